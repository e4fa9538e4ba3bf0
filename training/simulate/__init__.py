"""Simulator of pooled IPD from randomised trials of exercise therapy for persistent low
back pain, calibrated to the published IPD meta-analysis (27 trials, 3514 participants).

Everything it produces is SYNTHETIC: no real participant is in it. The true individual
effects are known (``truth``), which is the point: learners can be scored against them.

Public API:

* ``simulate_dataset(scenario="hayden2020", seed=1, n_participants=None) -> SimulatedData``
  (``.participants``, ``.outcomes``, ``.truth``, ``.scenario``; ``.write(folder)``)
* ``calibration_report(sim) -> pandas.DataFrame`` (section, quantity, published, simulated,
  lower, upper, tolerance, within)
* ``generate_population(n, seed, scenario="hayden2020") -> pandas.DataFrame``
* ``true_expected(profiles, follow_up, outcome, scenario)`` and
  ``true_benefit(profiles, comparator, follow_up, outcome, scenario)``
* ``load_scenario(name)``, ``list_scenarios()``
"""
from training.simulate.generator import SimulatedData, simulate_dataset
from training.simulate.population import generate_population
from training.simulate.report import calibration_report
from training.simulate.scenario import Scenario, list_scenarios, load_scenario
from training.simulate.benefit import true_benefit, true_expected

__all__ = [
    "SimulatedData", "simulate_dataset", "generate_population", "calibration_report", "Scenario",
    "list_scenarios", "load_scenario", "true_benefit", "true_expected",
]
