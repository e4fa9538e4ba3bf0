"""lbp-benefit serving: the FastAPI scoring service. Depends on ``predict`` only; never on ``training``."""
