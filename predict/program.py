"""A model's tasks compiled into one flat program for the fused kernel (:mod:`predict.fused`).

:func:`compile_program` turns the typed learners of every task (:mod:`predict.learner_model`:
learners, stacks, X/DR nuisances, LightGBM forests, linear blocks, interval models) and one
comparator into integer and float tables; :meth:`Program.run` scores a feature matrix with them and returns what
:func:`predict.reference.task_scores` returns per task. The per-learner functions in
:mod:`predict.runtime` stay the reference (and the path used without numba or for anything this
compiler does not take: it returns None then); tests compare the two to 1e-9.

Batches of at least :data:`PARALLEL_MIN_ROWS` patients are split over a few threads (the kernel
releases the GIL); smaller ones, e.g. one HTTP request, run on the calling thread.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from predict import fused as fz
from predict import kernels
from predict.impute import Imputer, pattern_groups, pattern_part, pattern_solve
from predict.learner_model import (BETWEEN_MIXTURE, EffectTreeLearner, Learner, LinearLearner, StackedLearner, TLearner,
                                   as_learner)
from predict.linear import Block
from predict.prepared import CompiledLearners
from predict.tables import KernelTables, pack_tables

PARALLEL_MIN_ROWS = 4096


PATTERN_CACHE = 512  # missing-data patterns kept per program (each T x (p x p + M x p) floats)


def default_threads() -> int:
    """Threads for large batches: ``LBP_SCORE_THREADS`` if set, else the CPUs this process may
    use (at most 8)."""
    env = os.environ.get("LBP_SCORE_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


class _Unsupported(Exception):
    pass


class _Builder:
    def __init__(self, p: int, compiled: CompiledLearners | None = None):
        self.p = p
        self.compiled = compiled
        self.leaf_int: list[list[int]] = []
        self.leaf_float: list[list[float]] = []
        self.theta: list[np.ndarray] = []
        self.n_theta = 0
        self.V: list[np.ndarray] = []
        self.n_V = 0
        self.VM: list[np.ndarray] = []
        self.n_VM = 0
        self.DES: list[np.ndarray] = []
        self.n_DES = 0
        self.blocks: list[list[int]] = []
        self.cols: dict[str, list] = {k: [] for k in ("feat", "feat2", "kind", "tj", "t2", "t1", "r1", "r2", "inv_norm",
                                                      "level", "loc", "inv_scale", "dest", "dw", "ew")}
        self.center: list[np.ndarray] = []
        self.n_center = 0
        self.forests: list[list[int]] = []
        self.forest_zero: list[int] = []
        self.forest_fill: list[np.ndarray] = []
        self.nodes: dict[str, list] = {k: [] for k in ("roots", "feat", "thr", "nanch", "mtype", "ch", "leafv", "LD", "LR",
                                                      "LFE", "LTH", "LNA", "LCH", "LV")}
        self.n_lock = 0
        self.n_nodes = 0
        self.n_leaves = 0
        self.n_roots = 0
        self.max_design = 1
        self.max_K = 1
        self.forest_ids: dict[int, int] = {}

    # ------------------------------------------------------------------ pieces
    def _floats(self, store: list, count: str, a) -> int:
        a = np.ascontiguousarray(np.asarray(a, float).ravel())
        off = getattr(self, count)
        store.append(a)
        setattr(self, count, off + a.size)
        return off

    def forest(self, learner: Learner, name: str) -> int:
        fo = self.compiled.forest(learner, name)
        if fo is None:
            raise _Unsupported(f"booster {name} not compiled")
        hit = self.forest_ids.get(id(fo))
        if hit is not None:
            return hit
        if fo["n_features"] > self.p:
            raise _Unsupported("booster uses more features than the model has")
        no, lo = self.n_nodes, self.n_leaves

        def remap(ch: np.ndarray) -> np.ndarray:
            ch = ch.astype(np.int64)
            return np.where(ch >= 0, ch + no, ch - lo)  # leaf ~l -> ~(l + lo)

        nd = self.nodes
        nd["roots"].append(remap(fo["roots"]))
        nd["feat"].append(fo["feat"].astype(np.int64))
        nd["thr"].append(fo["thr"].astype(float))
        nd["nanch"].append(remap(fo["nanch"]))
        nd["mtype"].append(fo["mtype"].astype(np.int64))
        nd["ch"].append(remap(fo["ch"]))
        nd["leafv"].append(fo["leafv"].astype(float))
        lk = fo["lock"]
        lo_ = self.n_lock
        nd["LD"].append(lk["depth"].astype(np.int64))
        nd["LR"].append(lk["roots"].astype(np.int64) + lo_)
        nd["LFE"].append(lk["feat"].astype(np.int64))
        nd["LTH"].append(lk["thr"].astype(float))
        nd["LNA"].append(lk["nanch"].astype(np.int64) + lo_)
        nd["LCH"].append(lk["ch"].astype(np.int64) + lo_)
        nd["LV"].append(lk["val"].astype(float))
        self.n_lock += lk["val"].size
        r0 = self.n_roots
        self.n_roots += fo["roots"].size
        self.n_nodes += fo["feat"].size
        self.n_leaves += fo["leafv"].size
        self.forests.append([r0, self.n_roots])
        self.forest_zero.append(1 if fo["has_zero"] else 0)
        fill = np.zeros(self.p, np.int64)  # features split on with missing type None: NaN never seen
        fill[fo["feat"][fo["mtype"] == 0].astype(np.int64)] = 1
        self.forest_fill.append(fill)
        fid = len(self.forests) - 1
        self.forest_ids[id(fo)] = fid
        return fid

    def block(self, blk: Block | None, coef: np.ndarray, centred: bool, expected: bool = False) -> int:
        if blk is None:
            if coef.size:
                raise _Unsupported("coefficients without a block")
            return -1
        cc = self.compiled.columns(blk)
        if cc is None:
            raise _Unsupported("block not compiled")
        ncol = cc["feat"].size
        if blk.type == "index":
            nd = 1
            dest = np.zeros(ncol, np.int64)
            dw = blk.beta
            if dw.size != ncol:
                raise _Unsupported("index block size")
        else:
            nd = ncol
            dest = np.arange(ncol, dtype=np.int64)
            dw = np.ones(ncol)
        if coef.size != nd:
            raise _Unsupported("block size differs from its coefficients")
        if np.any(cc["feat"] >= self.p) or np.any(cc["feat"] < 0) or np.any(cc["feat2"] >= self.p) \
                or np.any(cc["feat2"] < 0):
            raise _Unsupported("block feature index")
        c0 = len(self.cols["feat"])
        # the columns sorted by kind (linear, spline, one-hot, product): the kernel's branch on the kind then
        # takes the same way for runs of columns
        order = np.argsort(np.asarray(cc["kind"]), kind="stable")
        safe = lambda num, den: np.divide(num, den, out=np.zeros_like(num, dtype=float), where=den != 0)  # noqa: E731
        derived = {"r1": safe(np.asarray(cc["c1"], float), np.asarray(cc["d"], float)),
                   "r2": safe(np.asarray(cc["c2"], float), np.asarray(cc["d"], float)),
                   "inv_norm": safe(np.ones(ncol), np.asarray(cc["norm"], float)),
                   "inv_scale": safe(np.ones(ncol), np.asarray(cc["scale"], float))}
        if np.any(np.asarray(cc["scale"], float) == 0):
            raise _Unsupported("zero scale")
        for k in ("feat", "feat2", "kind", "tj", "t2", "t1", "level", "loc"):
            self.cols[k].extend(np.asarray(cc[k])[order].tolist())
        for k, v in derived.items():
            self.cols[k].extend(v[order].tolist())
        self.cols["dest"].extend(dest[order].tolist())
        self.cols["dw"].extend(dw[order].tolist())
        # the draws' delta weights: a column's coefficient over its scale (the index block's beta times its coefficient)
        if blk.type == "index":
            ew = blk.beta * coef[0] / cc["scale"]
        else:
            ew = coef / cc["scale"]
        self.cols["ew"].extend(np.asarray(ew, float)[order].tolist())
        coff = -1
        if centred:
            ctr = np.asarray(blk.center, float).ravel()
            if ctr.size != nd:
                raise _Unsupported("centre size")
            coff = self._floats(self.center, "n_center", ctr)
        self.max_design = max(self.max_design, nd)
        n_prod = int(np.sum(np.asarray(cc["kind"]) == 3))  # sorted last: the kernel's product loop
        self.blocks.append([c0, c0 + ncol, nd, coff, c0 + ncol - n_prod, int(expected)])
        return len(self.blocks) - 1

    # ------------------------------------------------------------------ learners
    def leaf(self, L: Learner, comparator: str, nuisance: bool = False) -> int:
        """Append the leaf record(s) of one non-stacked learner; returns its leaf index."""
        comps = list(L.comparators)
        if comparator not in comps:
            raise _Unsupported("comparator not in a member's classes")
        rec = [0] * fz.N_LEAF_INT
        flt = [0.0, 1.0, 0.0]
        rec[fz.K_NUIS] = rec[fz.K_FA] = rec[fz.K_FB] = rec[fz.K_PROG] = rec[fz.K_MOD] = -1
        rec[fz.K_V] = rec[fz.K_VM] = rec[fz.K_AVA] = rec[fz.K_AVC] = rec[fz.K_DES] = -1
        rec[fz.K_CONT] = 1 if L.continuous else 0
        rec[fz.K_ROLE] = 1 if nuisance else 0
        rec[fz.K_TREEIN] = 0 if getattr(L, "tree_missing", "native") == "native" else 1
        make = _LEAF.get(type(L))
        if make is None:
            raise _Unsupported(f"learner kind {L.kind}")
        make(self, L, comparator, nuisance, rec, flt)
        iv = L.interval if not nuisance else None
        if iv is None:
            rec[fz.K_IV] = fz.IV_NONE
        elif iv.method == "delta" and not L.has_trees:
            V = iv.theta_cov
            if V is None or V.shape != (rec[fz.K_K], rec[fz.K_K]):
                raise _Unsupported("theta_cov shape")
            rec[fz.K_IV] = fz.IV_DELTA
            rec[fz.K_V] = self._floats(self.V, "n_V", V)
            rec[fz.K_ARM] = int(rec[fz.K_LINK] == (0 if rec[fz.K_CONT] == 1 else 1))  # identity / logit
        elif iv.method == "varmodel":
            loc, scale = iv.design_loc, iv.design_scale
            vm = iv.varmodel[comparator]
            if loc.size != self.p or scale.size != self.p or vm.size != 1 + 2 * self.p:
                raise _Unsupported("variance-model design size")
            rec[fz.K_IV] = fz.IV_VARMODEL
            rec[fz.K_DES] = self._floats(self.DES, "n_DES", np.concatenate([loc, scale]))
            rec[fz.K_VM] = self._floats(self.VM, "n_VM", vm)
            avm = iv.arm_varmodel
            if L.has_trees and avm is not None and comparator in avm and "__active__" in avm:
                va, vc = avm["__active__"], avm[comparator]
                if va.size != 1 + 2 * self.p or vc.size != 1 + 2 * self.p:
                    raise _Unsupported("arm variance-model size")
                rec[fz.K_ARM] = 1
                rec[fz.K_AVA] = self._floats(self.VM, "n_VM", va)
                rec[fz.K_AVC] = self._floats(self.VM, "n_VM", vc)
        else:
            raise _Unsupported(f"interval method {iv.method!r} for {L.kind}")
        self.leaf_int.append(rec)
        self.leaf_float.append(flt)
        return len(self.leaf_int) - 1

    def _effect_trees_leaf(self, L: EffectTreeLearner, comparator: str, nuisance: bool, rec: list, flt: list) -> None:
        rec[fz.K_KIND] = fz.KIND_XDR
        rec[fz.K_NUIS] = self.leaf(L.nuisance, comparator, nuisance=True)
        if not 1 <= len(L.tau) <= 2:
            raise _Unsupported("benefit boosters")
        for k, (name, w) in zip((fz.K_FA, fz.K_FB), L.tau):
            rec[k] = self.forest(L, name)
        if len(L.tau) == 2:
            flt[1], flt[2] = L.tau[0][1], L.tau[1][1]
        flt[0] = float(L.class_benefit[comparator])

    def _linear_leaf(self, L: LinearLearner, comparator: str, nuisance: bool, rec: list, flt: list) -> None:
        comps = list(L.comparators)
        C = len(comps)
        lin = L.linear
        theta = lin.theta
        n_prog, n_mod = lin.n_prog, lin.n_mod
        K = theta.size
        if K != 1 + C + n_prog + n_mod:
            raise _Unsupported("theta layout")
        rec[fz.K_KIND] = fz.KIND_T if L.has_trees else fz.KIND_LIN
        rec[fz.K_LINK] = 0 if lin.link == "identity" else 1
        rec[fz.K_K], rec[fz.K_C], rec[fz.K_D] = K, C, 1 + comps.index(comparator)
        rec[fz.K_NPROG], rec[fz.K_NMOD] = n_prog, n_mod
        rec[fz.K_PROG] = self.block(lin.prog, theta[1 + C:1 + C + n_prog], centred=False, expected=lin.expected)
        rec[fz.K_MOD] = self.block(lin.modifier, theta[K - n_mod:], centred=True, expected=lin.expected)
        rec[fz.K_THETA] = self._floats(self.theta, "n_theta", theta)
        self.max_K = max(self.max_K, K)
        if L.has_trees:  # a T-learner
            rec[fz.K_FA] = self.forest(L, "active")
            if not nuisance:  # an X/DR nuisance gives its active-arm prediction only
                rec[fz.K_FB] = self.forest(L, "control")


_LEAF = {LinearLearner: _Builder._linear_leaf, TLearner: _Builder._linear_leaf,
         EffectTreeLearner: _Builder._effect_trees_leaf}


class Program:
    """The compiled tables for one comparator (see module docstring). Thread-safe once built."""

    def __init__(self, tasks: list[int], imputers: list[Imputer], tables: KernelTables, p: int, M: int):
        self.tasks = tasks  # positions (in the exports given to compile_program) of the compiled tasks
        self.imputers = imputers
        self.tables: KernelTables = tables
        self.p = p
        self.M = M
        self._patterns: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def _pattern(self, m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per task, for missing pattern ``m``: the regression A (p, p), the draws' noise N (M, p) and
        the conditional covariance (p, p; zero where observed) of the missing features."""
        key = m.tobytes()
        hit = self._patterns.get(key)
        if hit is not None:
            return hit
        T, p, M = len(self.imputers), self.p, self.M
        A = np.zeros((T, p, p))
        N = np.zeros((T, M, p))
        S = np.zeros((T, p, p))
        if m.any():
            for t, imp in enumerate(self.imputers):
                A[t], N[t, :imp.z.shape[0]] = pattern_part(imp, m)
                L = pattern_solve(imp, imp.cov, m)[1]
                S[t][np.ix_(m, m)] = L @ L.T
        with self._lock:
            if len(self._patterns) >= PATTERN_CACHE:
                self._patterns.clear()
            self._patterns[key] = (A, N, S)
        return A, N, S

    def run(self, F: np.ndarray, groups=None, arms: bool = False, threads: int | None = None,
            z: float = 1.959963984540054) -> np.ndarray:
        """Scores (17, T, n) of the compiled tasks for the feature matrix F (NaN = missing); rows
        as in :mod:`predict.fused` (intervals at the normal quantile ``z``).
        ``groups``: :func:`predict.impute.pattern_groups` of F."""
        F = np.ascontiguousarray(F, dtype=np.float64)
        n = F.shape[0]
        T = len(self.tasks)
        out = np.empty((fz.N_OUT, T, n))
        if n == 0 or T == 0:
            return out
        keys, inv = groups if groups is not None else pattern_groups(F)
        parts = [self._pattern(m) for m in keys]
        A = np.stack([q[0] for q in parts])
        N = np.stack([q[1] for q in parts])
        S = np.stack([q[2] for q in parts])
        inv = np.ascontiguousarray(inv, dtype=np.int64)
        args = (*self.tables, out)
        k = default_threads() if threads is None else max(1, int(threads))
        if k == 1 or n < PARALLEL_MIN_ROWS:
            fz.run(F, inv, A, N, S, 0, n, arms, float(z), *args)
            return out
        bounds = np.linspace(0, n, k + 1).astype(int)
        ex = pool(k)
        futs = [ex.submit(fz.run, F, inv, A, N, S, int(bounds[j]), int(bounds[j + 1]), arms, float(z), *args)
                for j in range(k)]
        for f in futs:
            f.result()
        return out


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def pool(k: int) -> ThreadPoolExecutor:
    """The process's scoring thread pool, with at least ``k`` threads."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < k:
            _POOL = ThreadPoolExecutor(max_workers=k, thread_name_prefix="lbp-score")
        return _POOL


def warm_up() -> bool:
    """Compile the fused kernel now (or load it from numba's on-disk cache) by calling it on an
    empty program of the right types; True if it is usable. The first compilation after
    installing takes some 20 s; scoring a first patient would otherwise pay it."""
    if not kernels.AVAILABLE or not kernels.ready():
        return False
    empty = Program([], [], pack_tables(_Builder(1), 1, [], [], [], [], [], [], []), 1, 1)
    fz.run(np.zeros((0, 1)), np.zeros(0, np.int64), np.zeros((0, 0, 1, 1)), np.zeros((0, 0, 1, 1)),
           np.zeros((0, 0, 1, 1)), 0, 0, False,
            1.96, *empty.tables, np.zeros((fz.N_OUT, 0, 0)))
    return True


def compile_program(learners: list[Learner | dict], comparator: str,
                    compiled: CompiledLearners | None = None) -> Program | None:
    """The program scoring ``comparator`` for every typed learner in ``learners`` that has it as a
    class (:mod:`predict.learner_model`; ``compiled``: their compiled forests and columns, made
    here if not given); None if numba is unavailable or anything is outside what the kernel
    reproduces (the caller then uses the numpy reference). :func:`compile_program_why` says why."""
    return compile_program_why(learners, comparator, compiled)[0]


def compile_program_why(learners: list[Learner | dict], comparator: str,
                        compiled: CompiledLearners | None = None) -> tuple[Program | None, str]:
    """(:func:`compile_program`, why it is None: "" when compiled). Learner exports (dicts) are
    built into typed learners first."""
    if not kernels.AVAILABLE:
        return None, "numba is not available (or LBP_NO_NUMBA is set)"
    if not kernels.ready():
        return None, f"the compiled kernels failed their self-test ({kernels.self_test_error() or 'no detail'})"
    if not learners:
        return None, "no task"
    try:
        learners = [as_learner(L) for L in learners]
    except (KeyError, TypeError, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    p = len(learners[0].features["names"])
    compiled = CompiledLearners(learners) if compiled is None else compiled
    b = _Builder(p, compiled)
    tasks, imputers, ti, tf = [], [], [], []
    mem_ids: list[int] = []
    order: list[int] = []
    mem_w: list[float] = []
    mem_wn: list[float] = []
    mem_corr: list[list[float]] = []
    try:
        for pos, L in enumerate(learners):
            if comparator not in L.comparators:
                continue
            if not compiled.ready(L) or len(L.features["names"]) != p:
                raise _Unsupported("learner not compiled for the fast path")
            imp = L.imputer
            if imp.mean.size != p:
                raise _Unsupported("imputer size")
            m0 = len(mem_ids)
            if isinstance(L, StackedLearner):
                w, wn = L.weights, L.weights_normalised
                if L.interval.method != "stack" or len(L.members) != w.size or w.size == 0:
                    raise _Unsupported("stack layout")
                R = (L.interval.member_corr or {}).get(comparator)
                for j, e in enumerate(L.members):
                    if isinstance(e, StackedLearner) or e.outcome_type != L.outcome_type:
                        raise _Unsupported("nested stack or mixed outcome types")
                    mem_ids.append(b.leaf(e, comparator))
                    mem_w.append(float(w[j]))
                    mem_wn.append(float(wn[j]))
                    mem_corr.append([1.0] * w.size if R is None else [float(v) for v in R[j]])
                m1, stacked = len(mem_ids), 2 if L.interval.between == BETWEEN_MIXTURE else 1
                corr = int(R is not None)
            else:
                mem_ids.append(b.leaf(L, comparator))
                mem_w.append(1.0)
                mem_wn.append(1.0)
                mem_corr.append([1.0])
                m1, stacked, corr = m0 + 1, 0, 0
            arms_ok = int(all(b.leaf_int[mem_ids[m]][fz.K_ARM] == 1 for m in range(m0, m1)))
            M = int(imp.z.shape[0])
            o0 = len(order)
            for m in range(m0, m1):
                nu = b.leaf_int[mem_ids[m]][fz.K_NUIS]
                order.extend(([nu] if nu >= 0 else []) + [mem_ids[m]])
            ti.append([m0, m1, stacked, int(L.continuous), arms_ok, M, len(imputers), o0, len(order), corr])
            tf.append([L.interval.tau_of(comparator), 100.0 if L.continuous else 1.0])
            tasks.append(pos)
            imputers.append(imp)
    except (_Unsupported, KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if not tasks:
        return None, f"no task has {comparator!r} as a class"
    M = max(r[fz.T_M] for r in ti)
    tables = pack_tables(b, p, ti, tf, imputers, mem_ids, order, mem_w, mem_wn, mem_corr)
    return Program(tasks, imputers, tables, p, M), ""
