"""The per-task work that follows the IECV in ``lbp-benefit train``: each task's IECV plots and the
subgroup performance of its deployed learner's held-out predictions, the tasks spread over forked
worker processes (each task's numbers depend only on its own inputs and seed, so the files are the
same with one worker or several)."""
from __future__ import annotations

from training.cards.subgroups import subgroup_performance
from training.train_report import write_plots

_POST: dict = {}


def plots_and_subgroups(items: list, workers: int, subgroup_boot: int, seed: int) -> list:
    """For each ``(plots_dir, task, iecv_result, selection, outcome_type)`` of ``items``: write the
    task's IECV plots and return the subgroup performance (a DataFrame; none when ``subgroup_boot``
    is 0 or the learner has no held-out predictions) of the selected (or best single) learner, in
    task order, over ``workers`` forked processes."""
    global _POST
    _POST = {"items": items, "boot": subgroup_boot, "seed": seed}
    try:
        if workers > 1 and len(items) > 1:
            import multiprocessing as mp

            with mp.get_context("fork").Pool(min(workers, len(items))) as pool:
                parts = pool.map(_one_task, range(len(items)), chunksize=1)
        else:
            parts = [_one_task(i) for i in range(len(items))]
    finally:
        _POST = {}
    return [p for p in parts if p is not None]


def _one_task(i: int):
    plots, task, res, how, otype = _POST["items"][i]
    write_plots(plots, task, res, how)
    if _POST["boot"] <= 0:
        return None
    lr_name = how.get("best_single", how["model"])
    p = res.predictions[res.predictions["learner"] == lr_name]
    if not len(p):
        return None
    return subgroup_performance(p.assign(task=task, outcome_type=otype), n_boot=_POST["boot"], seed=_POST["seed"])
