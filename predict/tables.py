"""The compiled program's tables: one typed structure (:class:`KernelTables`) of named parts, in
the order the fused kernel (:func:`predict.fused.run`) takes them, and their packing into
contiguous arrays from a program builder's lists (:func:`pack_tables`).

Integer tables index into the float tables. A "leaf" is one non-stacked learner: a stack member,
an X/DR learner's nuisance T-learner or a plain learner. The column constants of the integer
tables (``K_*`` for leaves, ``T_*`` for tasks) are defined in :mod:`predict.fused`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from predict import fused as fz


class TaskTables(NamedTuple):
    """Per task (T of them)."""

    floats: np.ndarray  # (T, 2): between-trial SD tau for the comparator; outcome limit (100 or 1)
    ints: np.ndarray    # (T, 9): member range, stacked, continuous, arms, M draws, imputer, order range (fused.T_*)


class ImputerTables(NamedTuple):
    """Per imputer (one per task), each (imputers, p)."""

    mean: np.ndarray    # pooled means
    lower: np.ndarray   # lower bounds of imputed and drawn values
    upper: np.ndarray   # upper bounds
    binary: np.ndarray  # binary features (draws rounded)


class LeafTables(NamedTuple):
    """Per leaf learner, and the stacks' members."""

    ints: np.ndarray         # (leaves, 23): kind, link, blocks, theta offset, forests, interval model ... (fused.K_*)
    floats: np.ndarray       # (leaves, 3): class benefit (X/DR), X-learner weights e and 1 - e
    member: np.ndarray       # leaf of each stack member (tasks' ranges in TaskTables.ints)
    order: np.ndarray        # evaluation order of leaves per task (each X/DR nuisance before its learner)
    weight: np.ndarray       # member weights (stack coefficients)
    weight_norm: np.ndarray  # member weights normalised to sum 1 (the active arm's average)
    corr: np.ndarray         # (members, widest stack): row m, column j = error correlation of member m with its
                             # task's member T_L0 + j (interval.member_corr; ones where the task has none)


class CoefTables(NamedTuple):
    """Coefficients, concatenated over leaves (offsets in LeafTables.ints)."""

    theta: np.ndarray      # coefficient vectors [intercept, offsets, beta, gamma]
    theta_cov: np.ndarray  # bootstrap covariances of theta, row by row (delta method)
    varmodel: np.ndarray   # variance-model coefficients (benefit and per arm)
    design: np.ndarray     # variance-model designs (loc, scale)
    center: np.ndarray     # modifier blocks' centres


class ColumnTables(NamedTuple):
    """Linear blocks and their basis columns (standardised linear, spline, one-hot and product columns)."""

    block: np.ndarray          # (blocks, 6): first column, end column, design width, centre offset (-1: none),
                               # first product column (products come last), 1 = the expected basis of missing
                               # inputs (predict.expected_basis; 0: the basis at the conditional mean)
    feature: np.ndarray        # per column: feature index
    feature2: np.ndarray       # per column: a product's second feature (else the feature itself)
    kind: np.ndarray           # per column: 0 linear, 1 restricted cubic spline, 2 one-hot, 3 product
    knot: np.ndarray           # spline: its knot t_j; product: the feature's origin
    knot_penult: np.ndarray    # spline: the last knot but one t_(k-1); product: the second feature's origin
    knot_last: np.ndarray      # spline: the last knot t_k
    ratio_last: np.ndarray     # spline: (t_k - t_j) / (t_k - t_(k-1))
    ratio_penult: np.ndarray   # spline: (t_(k-1) - t_j) / (t_k - t_(k-1))
    inv_norm: np.ndarray       # spline: 1 / (t_k - t_1)^2
    level: np.ndarray          # one-hot: the level
    loc: np.ndarray            # standardisation location
    inv_scale: np.ndarray      # 1 / standardisation scale
    dest: np.ndarray           # destination in the block's design (0 for an index block)
    design_weight: np.ndarray  # weight into the design (index block: beta; else 1)
    draw_weight: np.ndarray    # weight of the column's change on a draw (coefficient / scale)


class ForestTables(NamedTuple):
    """LightGBM forests (numerical splits) as flat trees, and each tree's lockstep form."""

    trees: np.ndarray           # (forests, 2): range of the forest's trees
    zero: np.ndarray            # per forest: uses LightGBM's zero-as-missing rule somewhere
    fill: np.ndarray            # (forests, p): 1 = split on with missing type None (a NaN gets the conditional mean)
    root: np.ndarray            # per tree: root node (>= 0) or leaf (~l)
    feature: np.ndarray         # per node: split feature
    threshold: np.ndarray       # per node: threshold
    nan_child: np.ndarray       # per node: child taken by a missing value
    missing_type: np.ndarray    # per node: LightGBM missing type (0 none, 1 zero, 2 NaN)
    children: np.ndarray        # per node: left and right children side by side
    leaf_value: np.ndarray      # per leaf: value
    depth: np.ndarray           # per tree: depth (steps of a lockstep walk)
    lock_root: np.ndarray       # per tree: root in the lockstep form (leaves are nodes that lead to themselves)
    lock_feature: np.ndarray    # per lockstep node: split feature (0 for a leaf)
    lock_threshold: np.ndarray  # per lockstep node: threshold (+inf for a leaf)
    lock_nan_child: np.ndarray  # per lockstep node: child taken by a missing value
    lock_children: np.ndarray   # per lockstep node: left and right children
    lock_value: np.ndarray      # per lockstep node: leaf value (0 for an internal node)


class KernelTables(NamedTuple):
    """A compiled program's tables: what :func:`predict.fused.run` takes after the patients
    (``F, inv, A, N, r0, r1, arms, z``) and before ``out``, in this order (checked against the
    kernel's signature on import)."""

    tasks: TaskTables
    imputers: ImputerTables
    leaves: LeafTables
    coefs: CoefTables
    columns: ColumnTables
    forests: ForestTables
    max_design_width: int  # widest block design (scratch size)
    max_theta: int         # longest theta (scratch size)


_KERNEL_PARAMS = getattr(fz.run, "py_func", fz.run).__code__.co_varnames[9:9 + len(KernelTables._fields)]
if tuple(_KERNEL_PARAMS) != KernelTables._fields:  # pragma: no cover - a programming error
    raise ImportError(f"predict.fused.run takes {_KERNEL_PARAMS}, not the KernelTables fields {KernelTables._fields}")


def pack_tables(b, p: int, ti: list, tf: list, imputers: list, mem_ids: list, order: list, mem_w: list,
                mem_wn: list, mem_corr: list | None = None) -> KernelTables:
    """A program builder's lists (predict.program) as the kernel's contiguous arrays; ``mem_corr``:
    per member row its correlations with its task's members (padded with ones to the widest stack)."""
    cat = lambda parts, dt=float: np.ascontiguousarray(np.concatenate(parts) if parts else np.zeros(0, dt), dtype=dt)  # noqa: E731
    i64 = lambda v: np.ascontiguousarray(np.asarray(v, np.int64))  # noqa: E731
    f64 = lambda v: np.ascontiguousarray(np.asarray(v, float))  # noqa: E731

    def per_imputer(key: str, dt) -> np.ndarray:
        rows = [np.asarray(getattr(i, key), dt) for i in imputers]
        return np.ascontiguousarray(np.stack(rows) if rows else np.zeros((0, p), dt))

    nodes = {k: cat(v, np.int64 if k not in ("thr", "leafv", "LTH", "LV") else float) for k, v in b.nodes.items()}
    c = b.cols
    return KernelTables(
        tasks=TaskTables(floats=f64(tf).reshape(len(tf), 2), ints=i64(ti).reshape(len(ti), fz.N_TASK_INT)),
        imputers=ImputerTables(mean=per_imputer("mean", float), lower=per_imputer("lower", float),
                               upper=per_imputer("upper", float), binary=per_imputer("binary", np.bool_)),
        leaves=LeafTables(ints=i64(b.leaf_int).reshape(len(b.leaf_int), fz.N_LEAF_INT),
                          floats=f64(b.leaf_float).reshape(-1, 3), member=i64(mem_ids), order=i64(order),
                          weight=f64(mem_w), weight_norm=f64(mem_wn), corr=_corr_table(mem_corr, len(mem_ids))),
        coefs=CoefTables(theta=cat(b.theta), theta_cov=cat(b.V), varmodel=cat(b.VM), design=cat(b.DES),
                         center=cat(b.center)),
        columns=ColumnTables(block=i64(b.blocks).reshape(len(b.blocks), 6), feature=i64(c["feat"]),
                             feature2=i64(c["feat2"]), kind=i64(c["kind"]), knot=f64(c["tj"]), knot_penult=f64(c["t2"]), knot_last=f64(c["t1"]),
                             ratio_last=f64(c["r1"]), ratio_penult=f64(c["r2"]), inv_norm=f64(c["inv_norm"]),
                             level=f64(c["level"]), loc=f64(c["loc"]), inv_scale=f64(c["inv_scale"]),
                             dest=i64(c["dest"]), design_weight=f64(c["dw"]), draw_weight=f64(c["ew"])),
        forests=ForestTables(trees=i64(b.forests).reshape(len(b.forests), 2), zero=i64(b.forest_zero),
                             fill=i64(b.forest_fill).reshape(len(b.forest_fill), p),
                             root=nodes["roots"], feature=nodes["feat"], threshold=nodes["thr"],
                             nan_child=nodes["nanch"], missing_type=nodes["mtype"], children=nodes["ch"],
                             leaf_value=nodes["leafv"], depth=nodes["LD"], lock_root=nodes["LR"],
                             lock_feature=nodes["LFE"], lock_threshold=nodes["LTH"], lock_nan_child=nodes["LNA"],
                             lock_children=nodes["LCH"], lock_value=nodes["LV"]),
        max_design_width=int(b.max_design), max_theta=int(b.max_K))


def _corr_table(rows: list | None, n: int) -> np.ndarray:
    """(n, widest row) contiguous float table of the members' correlation rows, padded with ones."""
    rows = list(rows) if rows is not None else [[1.0]] * n
    width = max([len(r) for r in rows] + [1])
    out = np.ones((n, width))
    for m, r in enumerate(rows):
        out[m, :len(r)] = r
    return np.ascontiguousarray(out)
