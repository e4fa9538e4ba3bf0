"""The compiled program's tables: one typed structure (:class:`KernelTables`), in the order the
fused kernel (:func:`predict.fused.run`) takes them, and their packing into contiguous arrays."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from predict import fused as fz


class KernelTables(NamedTuple):
    """A compiled program's tables: what :func:`predict.fused.run` takes after the patients
    (``F, inv, A, N, r0, r1, arms, z``) and before ``out``, in this order (checked against the
    kernel's signature on import). Integer tables index into the float tables; "leaf" = one
    non-stacked learner (a stack member, an X/DR nuisance T-learner or a plain learner)."""

    TF: np.ndarray      # (T, 2) per task: between-trial SD tau for the comparator; outcome limit (100 or 1)
    TI: np.ndarray      # (T, 9) per task: member range, stacked, continuous, arms, M draws, imputer, order range (fused.T_*)
    MU: np.ndarray      # (imputers, p) imputer means
    LO: np.ndarray      # (imputers, p) imputer lower bounds
    HI: np.ndarray      # (imputers, p) imputer upper bounds
    BIN: np.ndarray     # (imputers, p) binary features (draws rounded)
    LI: np.ndarray      # (leaves, 23) per leaf: kind, link, blocks, theta offset, forests, interval model ... (fused.K_*)
    LF: np.ndarray      # (leaves, 3) per leaf: class benefit (X/DR), X-learner weights e and 1 - e
    MEM: np.ndarray     # stack members: leaf ids, tasks' ranges in TI
    ORD: np.ndarray     # evaluation order of leaves per task (each X/DR nuisance before its learner)
    LW: np.ndarray      # member weights (stack coefficients)
    LWN: np.ndarray     # member weights normalised to sum 1 (the active arm's average)
    THETA: np.ndarray   # concatenated coefficient vectors [intercept, offsets, beta, gamma]
    VV: np.ndarray      # concatenated bootstrap covariances of theta (delta method)
    VM: np.ndarray      # concatenated variance-model coefficients (benefit and per arm)
    DES: np.ndarray     # concatenated variance-model designs (loc, scale)
    BI: np.ndarray      # (blocks, 4) per linear block: first column, end column, design width, centre offset
    CF: np.ndarray      # per basis column: feature index
    CK: np.ndarray      # per basis column: kind (linear, spline, one-hot)
    CTJ: np.ndarray     # per spline column: knot t_j
    CT2: np.ndarray     # per spline column: knot t_(k-1)
    CT1: np.ndarray     # per spline column: last knot t_k
    CR1: np.ndarray     # per spline column: (t_k - t_j) / (t_k - t_(k-1))
    CR2: np.ndarray     # per spline column: (t_(k-1) - t_j) / (t_k - t_(k-1))
    CIN: np.ndarray     # per spline column: 1 / (t_k - t_1)^2
    CLEV: np.ndarray    # per one-hot column: the level
    CLOC: np.ndarray    # per column: standardisation location
    CIS: np.ndarray     # per column: 1 / standardisation scale
    CDEST: np.ndarray   # per column: destination in the block's design (0 for an index block)
    CDW: np.ndarray     # per column: weight into the design (index block: beta; else 1)
    CEW: np.ndarray     # per column: weight of its change on a draw (coefficient / scale)
    CENTER: np.ndarray  # concatenated modifier centres
    FI: np.ndarray      # (forests, 2) per forest: range of its trees' roots
    FZ: np.ndarray      # per forest: uses LightGBM's zero-as-missing rule somewhere
    roots: np.ndarray   # per tree: root node (>= 0) or leaf (~l)
    feat: np.ndarray    # per node: split feature
    thr: np.ndarray     # per node: threshold
    nanch: np.ndarray   # per node: child taken by a missing value
    mtype: np.ndarray   # per node: LightGBM missing type
    ch: np.ndarray      # per node: left and right children
    leafv: np.ndarray   # per leaf: value
    LD: np.ndarray      # per tree: depth (steps of a lockstep walk)
    LR: np.ndarray      # per tree: root in the lockstep form (leaves are nodes that lead to themselves)
    LFE: np.ndarray     # per lockstep node: split feature (0 for a leaf)
    LTH: np.ndarray     # per lockstep node: threshold (+inf for a leaf)
    LNA: np.ndarray     # per lockstep node: child taken by a missing value
    LCH: np.ndarray     # per lockstep node: left and right children
    LV: np.ndarray      # per lockstep node: leaf value (0 for an internal node)
    max_design: int     # widest block design (scratch size)
    max_K: int          # longest theta (scratch size)


_KERNEL_PARAMS = getattr(fz.run, "py_func", fz.run).__code__.co_varnames[8:8 + len(KernelTables._fields)]
if tuple(_KERNEL_PARAMS) != KernelTables._fields:  # pragma: no cover - a programming error
    raise ImportError(f"predict.fused.run takes {_KERNEL_PARAMS}, not the KernelTables fields {KernelTables._fields}")


def pack_tables(b, p: int, ti: list, tf: list, imputers: list, mem_ids: list, order: list, mem_w: list,
          mem_wn: list) -> dict:
    """A program builder's lists (predict.program) as the kernel's contiguous arrays, by the field
    names of :class:`KernelTables`."""
    cat = lambda parts, dt=float: np.ascontiguousarray(np.concatenate(parts) if parts else np.zeros(0, dt), dtype=dt)  # noqa: E731
    i64 = lambda v: np.ascontiguousarray(np.asarray(v, np.int64))  # noqa: E731
    f64 = lambda v: np.ascontiguousarray(np.asarray(v, float))  # noqa: E731

    def per_imputer(key: str, dt) -> np.ndarray:
        rows = [np.asarray(i[key], dt) for i in imputers]
        return np.ascontiguousarray(np.stack(rows) if rows else np.zeros((0, p), dt))

    arrays = {
        "TI": i64(ti).reshape(len(ti), fz.N_TASK_INT), "TF": f64(tf).reshape(len(tf), 2),
        "MU": per_imputer("mean", float), "LO": per_imputer("lower", float), "HI": per_imputer("upper", float),
        "BIN": per_imputer("binary", np.bool_),
        "LI": i64(b.leaf_int).reshape(len(b.leaf_int), fz.N_LEAF_INT), "LF": f64(b.leaf_float).reshape(-1, 3),
        "MEM": i64(mem_ids), "ORD": i64(order), "LW": f64(mem_w), "LWN": f64(mem_wn),
        "THETA": cat(b.theta), "VV": cat(b.V), "VM": cat(b.VM), "DES": cat(b.DES),
        "BI": i64(b.blocks).reshape(len(b.blocks), 4), "CENTER": cat(b.center),
        "FI": i64(b.forests).reshape(len(b.forests), 2), "FZ": i64(b.forest_zero), "max_K": int(b.max_K), "max_design": int(b.max_design),
    }
    for k, col in (("CF", "feat"), ("CK", "kind"), ("CDEST", "dest")):
        arrays[k] = i64(b.cols[col])
    for k, col in (("CTJ", "tj"), ("CT2", "t2"), ("CT1", "t1"), ("CR1", "r1"), ("CR2", "r2"), ("CIN", "inv_norm"),
                   ("CLEV", "level"), ("CLOC", "loc"), ("CIS", "inv_scale"), ("CDW", "dw"), ("CEW", "ew")):
        arrays[k] = f64(b.cols[col])
    for k in ("roots", "feat", "nanch", "mtype", "ch", "LD", "LR", "LFE", "LNA", "LCH"):
        arrays[k] = cat(b.nodes[k], np.int64) if b.nodes[k] else np.zeros(0, np.int64)
    for k in ("thr", "leafv", "LTH", "LV"):
        arrays[k] = cat(b.nodes[k]) if b.nodes[k] else np.zeros(0)
    return arrays
