"""The runtime's public functions under one name for the tests (``rt.impute_mean`` ...); each comes
from the one module that owns it (predict/features, impute, linear, trees, evaluate,
uncertainty, prepared, reference, explain, runtime). Tests only: the code imports from the owning module."""
from __future__ import annotations

from types import SimpleNamespace

from predict import evaluate, explain, features, impute, linear, numeric, prepared, reference, runtime, trees, uncertainty

rt = SimpleNamespace()
for _m in (numeric, trees, features, impute, linear, evaluate, uncertainty, prepared, reference, explain, runtime):
    for _k in getattr(_m, "__all__", None) or [k for k in vars(_m) if not k.startswith("_")]:
        _v = getattr(_m, _k)
        if callable(_v) and getattr(_v, "__module__", None) == _m.__name__ or (_k.isupper() and not callable(_v)):
            setattr(rt, _k, _v)
