"""The typed, versioned records of the model format (pydantic): the manifest, its tasks and each
learner kind's export; their JSON Schema (:func:`json_schema`) is published in docs/artifact.md."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from predict.artifact import ArtifactError
from predict.model_format import BOOSTER_REF, KNOWN_KINDS, LEARNER_FORMAT, LEARNER_VERSION


# ----------------------------------------------------------------------------- typed records
class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class BoosterRef(_Record):
    """A LightGBM booster stored as its own file (LightGBM native text)."""

    path: str = Field(alias=BOOSTER_REF, description="model/<task>/<name>.txt")


Booster = Union[str, BoosterRef]  # the native text itself (run folders) or a reference (artifacts)


class Features(_Record):
    names: list[str]
    types: list[Literal["continuous", "binary", "categorical"]]
    categories: dict[str, list[str]] = {}


class Imputer(_Record):
    """Gaussian conditional imputation: pooled mean and total covariance of the features, the
    stored standard-normal draws ``z`` (M x p), bounds and which features are binary."""

    mean: list[float]
    cov: list[list[float]]
    z: list[list[float]]
    lower: list[float]
    upper: list[float]
    binary: list[bool]


class BasisColumn(_Record):
    """One standardised basis column, (value - loc) / scale: ``linear`` x, ``rcs`` restricted
    cubic spline term ``term`` of ``knots``, ``onehot`` 1[x = level], ``product``
    (x - origin)(x2 - origin2) of ``feature`` and ``feature2``."""

    feature: int
    kind: Literal["linear", "rcs", "onehot", "product"]
    loc: float
    scale: float
    knots: list[float] | None = None
    term: int | None = None
    level: float | None = None
    feature2: int | None = None
    origin: float | None = None
    origin2: float | None = None

    @model_validator(mode="after")
    def _kind_fields(self):
        need = {"rcs": ("knots", "term"), "onehot": ("level",), "product": ("feature2", "origin", "origin2")}
        missing = [k for k in need.get(self.kind, ()) if getattr(self, k) is None]
        if missing:
            raise ValueError(f"a {self.kind} column needs {', '.join(missing)}")
        return self


class Block(_Record):
    """A linear block: standardised basis columns (``basis``) or a one-column index (``index``:
    the basis weighted by ``beta``), with the centre the modifier terms are measured from."""

    type: Literal["basis", "index"]
    basis: list[BasisColumn]
    center: list[float] | None = None
    beta: list[float] | None = None


class LinearPart(_Record):
    """eta_c = intercept + offset_c + P beta; eta_active = intercept + P beta + (M - center) gamma;
    ``theta`` = [intercept, offsets..., beta..., gamma...]; ``missing``: how a patient's missing inputs
    enter the basis (see the field)."""

    link: Literal["identity", "logit"]
    prog: Block
    modifier: Block | None = None
    theta: list[float]
    n_prog: int
    n_mod: int
    missing: Literal["expected"] | None = None  # "expected": a missing input's columns are E[B(X) | observed]
    # (predict.expected_basis); absent: the basis at the conditional mean (artifacts before 2026-12-07)


class Interval(_Record):
    """Estimation uncertainty: ``delta`` (bootstrap covariance of theta), ``varmodel`` (a log-linear
    model of the bootstrap variance per comparator; ``arm_varmodel`` per arm) or ``stack``
    (members' SEs combined); ``tau``: between-trial SD per comparator; ``between`` (stacks only):
    "mixture" = the benefit's variance adds the members' disagreement (the model-averaging variance,
    ``predict.learner_model.BETWEEN_MIXTURE``); absent = members' SEs only (artifacts before 2026-12-07,
    scored as they were); another value is refused. ``member_corr`` (stacks only, optional, from
    2026-12-08): per comparator the members' estimation-error correlation matrix (K x K, symmetric,
    unit diagonal), the members' SEs combined as sqrt(s' R s); absent = added (R all ones)."""

    method: Literal["delta", "varmodel", "stack"]
    tau: dict[str, float]
    theta_cov: list[list[float]] | None = None
    varmodel: dict[str, list[float]] | None = None
    arm_varmodel: dict[str, list[float]] | None = None
    design: dict[str, list[float]] | None = None
    n_boot: int | None = None
    between: Literal["mixture"] | None = None
    member_corr: dict[str, list[list[float]]] | None = None


class StructuralCriterion(_Record):
    """One criterion of a derived binary outcome's definition, with the continuous outcome's model."""

    outcome: str
    baseline: str
    relative: float
    min_points: float
    sigma: float = Field(gt=0)
    comparators: list[str]
    linear: LinearPart


class StructuralMissing(_Record):
    """A derived binary outcome's structural missing-input allowance (predict.recovery_structure):
    version 1 is the only one this runtime reads; another is refused."""

    version: Literal[1]
    combine: Literal["any", "all"]
    criteria: list[StructuralCriterion] = Field(min_length=1)


class SupportInflation(_Record):
    """The extrapolation widening calibrated on held-out trials (predict.support, from 2026-12-07
    session 12): version 1 is the only one this runtime reads; another is refused."""

    method: Literal["heldout-excess-quadratic"]
    version: Literal[1]
    kappa: float = Field(ge=0, allow_inf_nan=False)


class Support(_Record):
    """The training support of the inputs driving effect modification (predict.support); only its
    optional ``inflation`` is typed here."""

    inflation: SupportInflation | None = None


class _LearnerBase(_Record):
    format: Literal["lbp-benefit-learner"]
    version: Literal[1]
    outcome_type: Literal["continuous", "binary"]
    active: str
    comparators: list[str]
    unavailable: list[str] = []
    features: Features
    imputer: Imputer
    interval: Interval
    meta: dict = {}
    structural_missing: StructuralMissing | None = None  # derived binary outcomes (recovery), from 2026-12-07
    support: Support | None = None


class LinearLearner(_LearnerBase):
    kind: Literal["constant", "effect_model", "risk_model"]
    linear: LinearPart


class TLearner(_LearnerBase):
    """Linear base plus one booster per arm (raw scores added to the linear predictor)."""

    kind: Literal["t_learner"]
    linear: LinearPart
    boosters: dict[Literal["active", "control"], Booster]
    tree_missing: Literal["native", "impute"] = "native"


class NuisanceTLearner(TLearner):
    """The T-learner embedded in an X/DR learner (its expected outcome under the active class):
    no interval of its own."""

    interval: Interval | None = None


class XLearnerCombine(_Record):
    e: float
    class_benefit: dict[str, float]


class XLearner(_LearnerBase):
    kind: Literal["x_learner"]
    nuisance: NuisanceTLearner
    boosters: dict[Literal["tau0", "tau1"], Booster]
    combine: XLearnerCombine
    tree_missing: Literal["native", "impute"] = "native"


class DRCombine(_Record):
    class_benefit: dict[str, float]


class DRLearner(_LearnerBase):
    kind: Literal["dr_learner"]
    nuisance: NuisanceTLearner
    boosters: dict[Literal["tau"], Booster]
    combine: DRCombine
    tree_missing: Literal["native", "impute"] = "native"


class StackMembers(_Record):
    weights: list[float]
    names: list[str]
    exports: list[Annotated[Union[LinearLearner, TLearner, XLearner, DRLearner], Field(discriminator="kind")]]


class StackedLearner(_LearnerBase):
    kind: Literal["stacked"]
    members: StackMembers


LearnerExport = Annotated[Union[LinearLearner, TLearner, XLearner, DRLearner, StackedLearner],
                          Field(discriminator="kind")]


class _LearnerDoc(BaseModel):
    export: LearnerExport


class TaskEntry(_Record):
    task: str
    outcome: str
    follow_up: str
    outcome_type: Literal["continuous", "binary"]
    learner: str | None = None
    kind: str | None = None
    selection: str = ""
    model: str
    boosters: list[str] = []
    comparators: list[str]
    unavailable: list[str] = []
    network: str | None = None


class NetworkComparator(_Record):
    node: str
    scored_by: Literal["learner", "ipd_network"]
    evidence: str | None = None
    tasks: dict[str, dict]


class FileEntry(_Record):
    sha256: str
    bytes: int


class ModelManifest(_Record):
    """``manifest.json`` of a model artifact (format 2.0)."""

    schema_version: Literal["2.0"]
    format: Literal["lbp-benefit-model"]
    model_id: str
    created: str | None
    package_version: str
    git_commit: str | None = None
    seed: int | None
    synthetic: bool
    study: str | None = None
    active: str = "exercise"
    environment: dict | None = Field(description="Python, platform and package versions at export; None: "
                                                 "not recorded (migrated from format 1.0)")
    training_environment: dict | None = Field(default=None, description="What the model was trained with: Python, "
                                              "platform, package versions, the BLAS kernels and whether they were the "
                                              "pinned ones (training/determinism.py); None: not recorded")
    training_data: dict
    feature_schema: list[dict]
    baselines: list[str]
    baseline_range: list[float] = [0.0, 100.0]
    outcomes: list[str]
    follow_ups: list[str]
    comparators: list[str]
    sparse_comparators: list[str]
    tasks: list[TaskEntry] = Field(min_length=1)
    scales: dict | None = None
    smallest_worthwhile: dict | None = None
    labels: dict[str, str] | None = Field(default=None, description="The configured labels of the arms: "
                                          "{'intervention': ..., 'comparator': ...} (predict/outcome_text.py)")
    outcome_definitions: dict[str, dict] | None = Field(
        default=None, description="Per outcome: label, kind, good_result (binary: what 1 means after harmonisation) "
                                  "and smallest_worthwhile ({'relative': f} of the baseline, {'absolute': x}, or null) "
                                  "from the study config; the derived recovery outcome also required_baselines "
                                  "({'combine': 'any'|'all', 'of': [...]}, predict/required_inputs.py); None: written "
                                  "before these existed (predict/outcome_text.py)")
    explanation: dict | None = None
    background: dict | None = None
    card: dict[str, str]
    network: dict | None = None
    network_comparators: list[NetworkComparator] | None = None
    content_sha256: str
    files: dict[str, FileEntry]


def json_schema() -> dict:
    """The JSON Schema of ``manifest.json`` and of a learner export (``model/<task>.json``)."""
    return {"manifest.json": ModelManifest.model_json_schema(by_alias=True),
            "model/<task>.json": _LearnerDoc.model_json_schema(by_alias=True)["$defs"] | {
                "LearnerExport": {"oneOf": [{"$ref": f"#/$defs/{n}"} for n in
                                            ("LinearLearner", "TLearner", "XLearner", "DRLearner", "StackedLearner")],
                                  "discriminator": "kind"}}}


def _first_error(exc: ValidationError) -> str:
    e = exc.errors()[0]
    where = ".".join(str(x) for x in e["loc"]) or "(top)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {e['msg']}{more}"


def parse_learner(exp: Any, where: str) -> BaseModel:
    """The typed record of one learner export; :class:`ArtifactError` naming ``where`` and the key."""
    if not isinstance(exp, dict):
        raise ArtifactError(f"{where}: a learner export must be a JSON object")
    if exp.get("format") != LEARNER_FORMAT or exp.get("version") != LEARNER_VERSION:
        raise ArtifactError(f"{where}: not an {LEARNER_FORMAT} v{LEARNER_VERSION} export")
    if not _kinds_known(exp):
        raise ArtifactError(f"{where}: holds an unknown learner kind (known: {', '.join(KNOWN_KINDS)})")
    try:
        return _LearnerDoc.model_validate({"export": exp}).export
    except ValidationError as exc:
        raise ArtifactError(f"{where}: {_first_error(exc)}") from None


def _kinds_known(exp: dict) -> bool:
    if exp.get("kind") not in KNOWN_KINDS:
        return False
    subs = [exp["nuisance"]] if isinstance(exp.get("nuisance"), dict) else []
    subs += (exp.get("members") or {}).get("exports") or []
    return all(isinstance(s, dict) and _kinds_known(s) for s in subs)


def parse_manifest(m: dict, where: str) -> ModelManifest:
    try:
        return ModelManifest.model_validate(m)
    except ValidationError as exc:
        raise ArtifactError(f"{where}: manifest {_first_error(exc)}") from None


