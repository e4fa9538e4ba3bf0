"""The network stage of a training run (``TrainSettings.network``), in its own process while the
IECV folds and final fits run.

The stage (``training.network.benefit_model.write_run_network``: per continuous task the ML-NMR or
one-stage IPD network model) reads only the tasks' data, never the learners' fits, so it need not
wait for them. Run after them it was half of the default ``train`` (session 9: IECV and final fits
43-46 s on 2 workers, then the network 57-64 s; BENCHMARKS.md, "Where the time went"). Started
first, in a process of its own, it overlaps them.

The process is created with the ``spawn`` start method: JAX (the ML-NMR sampler) must not run in a
process forked from one with threads or an initialised JAX, and the training pool forks; a spawned
interpreter is fresh, and the training process itself never imports JAX. It inherits the
environment (``OPENBLAS_CORETYPE`` pinned by the command line, ``training.determinism``), limits
BLAS to one thread as the training process does, and computes exactly what the in-process stage
computes (same data, seed and code): the network files, and so the model id, do not depend on
where the stage ran. Its log lines are collected and handed back with the status.
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd


def network_stage(out, analysis: pd.DataFrame, tasks: list, features: dict, method: str,
                  aggregate: str | None, seed: int) -> tuple[dict, list[str], float]:
    """Fit and write the run's networks into ``out/network/``: (status by task, log lines, seconds).
    ``aggregate``: None, ``"default"`` (the simulator's aggregate arm set) or a CSV path; used by
    ``method="ml-nmr"`` only."""
    from threadpoolctl import threadpool_limits

    from training.network.benefit_model import write_run_network

    t0 = time.time()
    lines: list[str] = []
    agg = None
    if method == "ml-nmr" and aggregate:
        from training.simulate.network import default_aggregate

        agg = default_aggregate() if aggregate == "default" else pd.read_csv(aggregate)
    with threadpool_limits(1):
        status = write_run_network(Path(out), analysis, tasks, features, log=lines.append, method=method,
                                   aggregate=agg, seed=seed)
    return status, lines, time.time() - t0


def _child(conn, args: tuple) -> None:
    """The spawned process: run the stage and send ("ok", result) or ("error", exception, traceback)."""
    import traceback

    try:
        conn.send(("ok", network_stage(*args)))
    except BaseException as exc:  # noqa: BLE001 - handed to the training process, which re-raises it
        try:
            conn.send(("error", exc, traceback.format_exc()))
        except Exception:  # an exception that cannot be pickled: its text
            conn.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}"), traceback.format_exc()))
    finally:
        conn.close()


class NetworkStage:
    """The network stage started now and collected later (:meth:`result`): in a spawned process when
    ``concurrent``, else in this process at :meth:`result` (the order of the stage before session 10).
    Use as a context manager so that a run failing elsewhere stops the stage's process."""

    def __init__(self, concurrent: bool, *args):
        self.args = args
        self._proc = None
        self._conn = None
        self._received = False
        self.concurrent = bool(concurrent)
        if concurrent:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            self._conn, child_end = ctx.Pipe(duplex=False)
            self._proc = ctx.Process(target=_child, args=(child_end, args), name="lbp-network-stage", daemon=True)
            self._proc.start()
            child_end.close()  # the child's end lives in the child only: a dead child reads as EOF here

    def result(self) -> tuple[dict, list[str], float]:
        """(status by task, log lines, the stage's own seconds); re-raises the stage's error."""
        if self._proc is None:
            return network_stage(*self.args)
        try:
            try:
                msg = self._conn.recv()
                self._received = True
            except EOFError:
                self._proc.join()
                raise RuntimeError(f"the network stage's process ended without a result (exit code "
                                   f"{self._proc.exitcode})") from None
            if msg[0] == "error":
                raise msg[1] from RuntimeError(f"in the network stage's process:\n{msg[2]}")
            return msg[1]
        finally:
            self.close()

    def close(self) -> None:
        """Stop the stage's process if it still runs; idempotent."""
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        if proc.is_alive() and not self._received:  # the run failed elsewhere: stop the stage
            proc.terminate()
        proc.join()
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
