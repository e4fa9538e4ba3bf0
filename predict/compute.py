"""The computation of a request: per task, the expected outcome under each arm, the benefit and
its intervals (and the per-arm intervals), for one comparator, from the tasks' typed learners
(``Task.model``, :mod:`predict.learner_model`) through the compiled program or the numpy
reference, or from the IPD network model; and the explanation of one task's benefit.

Intervals: SE = sqrt(estimation SE^2 + missing-data variance); CI = benefit -+ z SE; the
prediction interval adds the between-trial SD tau; clipped to the outcome's range (+-100 points,
+-1 for a probability difference). Per-arm CIs: sqrt(arm SE^2 + draw variance), clipped to 0-100.
"""
from __future__ import annotations

import logging
import threading

import numpy as np

from predict import fused as fz
from predict import network as netrt
from predict import network_posterior as netpost
from predict import support
from predict import arm_intervals
from predict import recovery_structure
from predict.explain import explain as explain_benefit
from predict.impute import impute_mean, impute_mean_fast, pattern_groups, pattern_solve
from predict.numeric import clip, norm_ppf
from predict.prepared import CompiledLearners
from predict.program import compile_program_why
from predict.reference import task_scores
from predict.task import Computed, Task

log = logging.getLogger("predict.compute")
LEVEL = 0.95
EXERCISE_CACHE = 8  # feature matrices whose exercise-arm predictions are kept (network-only nodes)
EXERCISE_CACHE_BYTES = 1 << 16  # ... if no larger than this (requests, not tables)


def benefit_intervals(b, se_est, var_m, tau, lim, z: float):
    """The benefit's CI and PI ((low, high), (low, high)), clipped to +-lim: SE = sqrt(se_est^2 +
    var_m) (estimation and missing inputs), the PI's adds tau^2 (between trials). The numpy form of
    the compiled kernel's ``predict.fused_steps.intervals``; arrays broadcast."""
    se = np.sqrt(se_est ** 2 + var_m)
    sp = np.sqrt(se ** 2 + tau ** 2)
    nlim = -lim
    return ((clip(b - z * se, nlim, lim), clip(b + z * se, nlim, lim)),
            (clip(b - z * sp, nlim, lim), clip(b + z * sp, nlim, lim)))


def _structural_intervals(t: Task, F: np.ndarray, comparator: str, r: np.ndarray, z: float):
    """The benefit's CI and PI and the arms' draw variances of a task with a structural missing-input
    allowance from the compiled program's parts ``r`` (rows of ``predict.fused``'s output for the
    task): :func:`benefit_intervals` with the missing-data variances widened by
    :func:`predict.recovery_structure.structural_variance`."""
    vb, va, vc = recovery_structure.structural_variance(t.model, t.structural, F, comparator)
    var_m = recovery_structure.widened(r[fz.O_VAR], vb)
    lim = 1.0 if t.outcome_type == "binary" else 100.0
    ci, pi = benefit_intervals(r[fz.O_B], r[fz.O_SE], var_m, t.model.interval.tau_of(comparator), lim, z)
    up = vb > r[fz.O_VAR]  # where the allowance applies; elsewhere the kernel's own numbers, bit for bit
    ci = tuple(np.where(up, v, r[o]) for v, o in zip(ci, (fz.O_CILO, fz.O_CIHI)))
    pi = tuple(np.where(up, v, r[o]) for v, o in zip(pi, (fz.O_PILO, fz.O_PIHI)))
    return ci, pi, recovery_structure.widened(r[fz.O_VA], va), recovery_structure.widened(r[fz.O_VC], vc)


class Engine:
    """Computes scores for the tasks of one loaded model (thread-safe; programs compiled on first use)."""

    def __init__(self, tasks: list[Task], index: dict[str, int], network_only: list[str], compiled: bool = True):
        self._tasks = list(tasks)
        # the compiled forests and basis columns the programs are built from (owned here, not
        # written into the learners); None: every comparator is scored by the numpy reference
        self.compiled = CompiledLearners([t.model for t in self._tasks]) if compiled else None
        self._index = dict(index)
        self.network_only = list(network_only)
        self._programs: dict = {}
        self._fused_positions: dict = {}
        self.compile_status: dict[str, str] = {}  # per comparator: "compiled" or "not compiled: <why>"
        self._exercise_cache: dict = {}
        self._lock = threading.Lock()

    def compute(self, F: np.ndarray, comparator: str, tasks: list[Task],
                arms: bool = False) -> tuple[list[Computed], dict]:
        """:meth:`compute_unwidened`, the intervals widened for patients beyond the training
        support (:func:`predict.support.widen_task`)."""
        out, arm_iv = self.compute_unwidened(F, comparator, tasks, arms)
        for c in out:
            if c.available and c.learner is None:
                c.ci, c.pi = support.widen_task(c.task.model, F, c.benefit, c.ci, c.pi)
        return out, arm_iv

    def compute_unwidened(self, F: np.ndarray, comparator: str, tasks: list[Task],
                          arms: bool = False) -> tuple[list[Computed], dict]:
        """Per task the point predictions and benefit intervals; with ``arms``, also the per-arm
        95% CIs of the expected outcome (see :meth:`_arm_bounds`) as {task: (exercise low,
        exercise high, comparator low, comparator high)} arrays over patients.

        The intervals of all tasks are computed together on stacked (task x patient) arrays: the
        same elementwise operations as one task at a time (identical numbers), without numpy's
        per-call overhead nine times over (it dominated scoring one patient).

        Paths (two): the compiled program (:mod:`predict.program`) when it compiled, for every
        batch size; else the numpy reference (:func:`predict.reference.task_scores`). A
        network-only comparator: the IPD network model, with the exercise arm from the same paths."""
        z = norm_ppf(0.5 + LEVEL / 2)
        out: list = []
        arm_iv: dict = {}
        n = F.shape[0]
        if comparator in self.network_only:
            exercise = self._exercise_arm(F, tasks, z)
            comp = [self._compute_network(F, comparator, t, z, exercise.get(t.task)) for t in tasks]
            for c in comp if arms else []:
                ex = exercise.get(c.task.task)
                if c.available and ex is not None and ex[1] is not None:
                    arm_iv[c.task.task] = arm_intervals.arm_bounds(c.task.model, F, c.exercise, c.benefit, c.ci, z,
                                                                   sd_exercise=ex[1])
            return comp, arm_iv
        if n and self.program(comparator) is not None:
            return self._compute_fused(F, comparator, tasks, arms, z)
        todo = []  # (position in out, task, exercise, comparator, benefit, se_est, var_missing, tau, lim)
        arm_rows: list = []  # (task, estimate, SE, missing-data variance) per arm, exercise then comparator
        for t in tasks:
            L = t.model
            if comparator not in L.comparators or n == 0:
                nan = np.full(n, np.nan)
                out.append(Computed(t, False, nan, nan, nan, (nan, nan), (nan, nan)))
                continue
            r = task_scores(L, F, comparator, arms=arms, structural=t.structural)
            se_arm = r["arm_se"]
            if se_arm is not None:  # one pass over the missing-data draws serves the benefit and both arms
                va, vc = r["arm_var_missing"]
                arm_rows.append((t, r["exercise"], se_arm[0], va))
                arm_rows.append((t, r["comparator"], se_arm[1], vc))
            todo.append((len(out), t, r["exercise"], r["comparator"], r["benefit"], r["se_est"], r["var_missing"],
                         L.interval.tau_of(comparator),
                         1.0 if t.outcome_type == "binary" else 100.0))
            out.append(None)
        if todo:
            ben = np.array([d[4] for d in todo], float).reshape(len(todo), n)
            se_est = np.array([d[5] for d in todo], float).reshape(len(todo), n)
            var_m = np.array([d[6] for d in todo], float).reshape(len(todo), n)
            tau = np.array([d[7] for d in todo], float)[:, None]
            lim = np.array([d[8] for d in todo], float)[:, None]
            (ci_lo, ci_hi), (pi_lo, pi_hi) = benefit_intervals(ben, se_est, var_m, tau, lim, z)
            for k, (pos, t, a, c, b, *_rest) in enumerate(todo):
                out[pos] = Computed(t, True, a, c, b, (ci_lo[k], ci_hi[k]), (pi_lo[k], pi_hi[k]))
        if arm_rows:
            est = np.array([d[1] for d in arm_rows], float).reshape(len(arm_rows), n)
            se_a = np.array([d[2] for d in arm_rows], float).reshape(len(arm_rows), n)
            var_a = np.array([d[3] for d in arm_rows], float).reshape(len(arm_rows), n)
            lo, hi = self._arm_bounds(est, se_a, var_a, z)
            for k in range(0, len(arm_rows), 2):
                arm_iv[arm_rows[k][0].task] = (lo[k], hi[k], lo[k + 1], hi[k + 1])
        return out, arm_iv

    def program(self, comparator: str):
        """The fused program (predict/program.py) scoring ``comparator`` for every task, compiled
        on first use; None where numba is unavailable, a learner is outside what it takes or the
        comparator is a network-only node (the IPD network model scores it). A learner comparator
        that does not compile is logged (a warning) and recorded in :attr:`compile_status`."""
        if comparator in self._programs:
            return self._programs[comparator]
        if comparator in self.network_only:
            return None
        if self.compiled is None:
            prog, why = None, "switched off (Scorer.load(..., compiled=False))"
        else:
            prog, why = compile_program_why([t.model for t in self._tasks], comparator, self.compiled)
        if prog is None:
            log.warning("scoring %s: the compiled program is not used (%s); the numpy reference scores "
                        "every batch (same numbers, slower)", comparator, why)
        self._programs[comparator] = prog
        self.compile_status[comparator] = "compiled" if prog is not None else f"not compiled: {why}"
        return prog

    def _compute_fused(self, F: np.ndarray, comparator: str, tasks: list[Task], arms: bool,
                       z: float, raw: bool = False) -> tuple[list[Computed], dict]:
        """:meth:`compute_unwidened` from the compiled program's output, which includes the
        intervals (the same arithmetic, done in the kernel: a few numpy calls per task cost more
        than the whole computation for one patient)."""
        prog = self.program(comparator)
        res = prog.run(F, pattern_groups(F), arms=arms, threads=1, z=z)
        n = F.shape[0]
        if raw:  # the exercise arm alone: {task: (expected outcome, arm SE, draw variance)}
            pos = {self._tasks[q].task: j for j, q in enumerate(prog.tasks)}
            return {t.task: (res[fz.O_A, pos[t.task]], res[fz.O_SEA, pos[t.task]], res[fz.O_VA, pos[t.task]])
                    for t in tasks if t.task in pos}, {}
        pos = self._fused_positions.get(comparator)
        if pos is None:
            pos = self._fused_positions[comparator] = {self._tasks[q].task: j for j, q in enumerate(prog.tasks)}
        arm_iv: dict = {}
        out = []
        for t in tasks:
            j = pos.get(t.task)
            if j is None:  # the comparator is not one of this task's classes
                nan = np.full(n, np.nan)
                out.append(Computed(t, False, nan, nan, nan, (nan, nan), (nan, nan)))
                continue
            va, vc = res[fz.O_VA, j], res[fz.O_VC, j]
            if t.structural is None:
                ci, pi = (res[fz.O_CILO, j], res[fz.O_CIHI, j]), (res[fz.O_PILO, j], res[fz.O_PIHI, j])
            else:  # the structural allowance (predict/recovery_structure.py): the kernel's own parts, widened
                ci, pi, va, vc = _structural_intervals(t, F, comparator, res[:, j], z)
            out.append(Computed(t, True, res[fz.O_A, j], res[fz.O_C, j], res[fz.O_B, j], ci, pi))
            if arms and n and res[fz.O_SEA, j, 0] == res[fz.O_SEA, j, 0]:
                if t.outcome_type == "continuous":
                    arm_iv[t.task] = (res[fz.O_EXLO, j], res[fz.O_EXHI, j], res[fz.O_CPLO, j], res[fz.O_CPHI, j])
                else:  # P(recovery) per arm, formed on the logit scale (predict/arm_intervals.py)
                    parts = arm_intervals.binary_parts_from(t.model, res[fz.O_A, j], res[fz.O_C, j], res[fz.O_SEA, j],
                                                            res[fz.O_SEC, j], va, vc)
                    arm_iv[t.task] = arm_intervals.binary_interval(parts, z)
        return out, arm_iv

    @staticmethod
    def _arm_bounds(est: np.ndarray, se: np.ndarray, var_missing: np.ndarray, z: float):
        """95% CI of the expected outcome under one arm for patients like this in an average trial:
        the learner's estimation SE (bootstrap delta method) and the spread over draws of missing
        inputs, clipped to 0-100. Returns (low, high) arrays shaped like ``est``."""
        sd = np.sqrt(se ** 2 + var_missing)
        return clip(est - z * sd, 0.0, 100.0), clip(est + z * sd, 0.0, 100.0)

    def _exercise_arm(self, F: np.ndarray, tasks: list[Task], z: float) -> dict:
        """Per task with a network model: (the learner's expected outcome under exercise, its SD
        for the per-arm interval or None) over the patients F. It does not depend on the node, so
        it is computed once per patient for every network-only node (a CDS card asks for several):
        by the compiled program of the task's first comparator (with the per-arm uncertainty), or
        the numpy reference; the last few feature matrices' results are kept."""
        key = None
        if F.nbytes <= EXERCISE_CACHE_BYTES:
            key = (F.tobytes(), F.shape, tuple(t.task for t in tasks))
            with self._lock:
                hit = self._exercise_cache.get(key)
            if hit is not None:
                return hit
        out: dict = {}
        by_comp: dict[str, list[Task]] = {}
        for t in tasks:
            comps = list(t.model.comparators)
            if t.net is not None and comps and F.shape[0]:
                by_comp.setdefault(comps[0], []).append(t)
        for comp, ts in by_comp.items():
            prog = self.program(comp)
            if prog is not None:
                res, _ = self._compute_fused(F, comp, ts, True, z, raw=True)
                for t in ts:
                    if t.task in res:
                        a, sea, va = res[t.task]
                        cont = t.outcome_type == "continuous"
                        out[t.task] = (a, None if not cont or np.isnan(sea).any() else np.sqrt(sea ** 2 + va))
                continue
            for t in ts:
                r = task_scores(t.model, F, comp, arms=True)
                sd = None
                if r["arm_se"] is not None:
                    sd = np.sqrt(np.asarray(r["arm_se"][0], float) ** 2 + np.asarray(r["arm_var_missing"][0], float))
                out[t.task] = (r["exercise"], sd)
        if key is None:
            return out
        with self._lock:
            if len(self._exercise_cache) >= EXERCISE_CACHE:
                self._exercise_cache.pop(next(iter(self._exercise_cache)))
            self._exercise_cache[key] = out
        return out

    def _compute_network(self, F: np.ndarray, node: str, t: Task, z: float, exercise) -> Computed:
        """Benefit vs a network-only node from the task's IPD network model (predict/network.py):
        delta-method SE, plus the conditional variance of missing modifiers; PI adds tau. The
        exercise prediction is the task learner's (``exercise``: :meth:`_exercise_arm`'s entry);
        the comparator's = exercise + benefit."""
        n = F.shape[0]
        if t.net is None or node not in t.net["nodes"] or n == 0 or exercise is None:
            nan = np.full(n, np.nan)
            return Computed(t, False, nan, nan, nan, (nan, nan), (nan, nan), netrt.MODEL_NAME, None)
        L, net = t.model, t.net
        Fimp = impute_mean(L.imputer, F)
        active = exercise[0]
        mods = list(net["model"]["modifiers"])
        cols = [self._index[mname] for mname in mods]
        Zm = Fimp[:, cols] if cols else np.zeros((n, 0))
        ben, se = netrt.benefit(net, node, Zm)
        var_miss = np.zeros(n)
        if cols:
            w = np.zeros(F.shape[1])
            w[cols] = netrt.slopes(net, node)
            imp = L.imputer
            S = imp.cov
            keys, inv = pattern_groups(F)
            for k, msk in enumerate(keys):
                if not msk[cols].any():
                    continue
                L = pattern_solve(imp, S, msk)[1]
                var_miss[inv == k] = float(np.sum((L.T @ w[msk]) ** 2))
        bayes = netpost.has_posterior(net)
        if bayes:  # ML-NMR: intervals from the stored posterior draws
            ben, se, ci, pi = netpost.intervals(net, node, Zm, var_miss, z)
        else:
            se = np.sqrt(se ** 2 + var_miss)
            tau = float(net["model"]["tau"])
            sp = np.sqrt(se ** 2 + tau ** 2)
            ci = (np.clip(ben - z * se, -100.0, 100.0), np.clip(ben + z * se, -100.0, 100.0))
            pi = (np.clip(ben - z * sp, -100.0, 100.0), np.clip(ben + z * sp, -100.0, 100.0))
        e = net["evidence"][node]
        ev = {"type": e["evidence"], "direct_trials": e["direct_trials"], "direct_participants": e["direct_participants"],
              "trials": e["trials"], "participants": e["participants"],
              **({"source": e["source"]} if "source" in e else {}),  # ML-NMR: direct (IPD) / aggregate only / indirect
              **({"intervals": "bayesian"} if bayes else {})}  # credible / posterior predictive
        return Computed(t, True, active, active + ben, ben, ci, pi, netrt.MODEL_NAME, ev)

    def explain(self, F: np.ndarray, comparator: str, t: Task) -> tuple[np.ndarray, np.ndarray]:
        L = t.model
        Fimp = impute_mean_fast(L.imputer, F)
        base, contrib = explain_benefit(L, F, Fimp, comparator)
        return base, contrib

    def explained_task(self, comparator: str, tasks: list[Task]) -> Task | None:
        for t in tasks:
            if comparator in t.model.comparators:
                return t
        return None
