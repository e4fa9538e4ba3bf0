"""The clinician web calculator: a page at ``/`` and ``/calculator`` built from the model's feature
schema, plain JS/CSS/SVG shipped with the package (no CDN), scoring through ``POST /calculator/score``.
See docs/calculator.md."""
from serving.calculator.routes import build_router

__all__ = ["build_router"]
