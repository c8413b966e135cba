"""bench/search_efficiency analysis over results.json histories (the sweeps themselves are not run here)."""
from __future__ import annotations

import json
import math

import pytest

from bench.search_efficiency import (best_within, compute_curve, epochs_to_reach, load_curves, markdown, plot,
                                     summarize, sweep_argv)


def _h(*trials):
    return [{"trial_id": f"t{i}", "status": s, "metric": m, "epochs": e}
            for i, (s, m, e) in enumerate(trials)]


def test_curve_counts_compute_of_every_finished_trial_and_only_scores_of_scored_ones():
    hist = _h(("completed", 3.0, 4), ("failed", None, 2), ("stopped", 5.0, 1), ("completed", 1.5, 4),
              ("running", None, 3))
    assert compute_curve(hist) == [(4, 3.0), (6, 3.0), (7, 3.0), (11, 1.5)]
    assert compute_curve(hist, "max") == [(4, 3.0), (6, 3.0), (7, 5.0), (11, 5.0)]


def test_best_within_budget_and_epochs_to_reach():
    curve = [(4, 3.0), (6, 3.0), (7, 2.0), (11, 1.5)]
    assert best_within(curve, 6) == 3.0 and best_within(curve, 100) == 1.5 and best_within(curve, 3) is None
    assert epochs_to_reach(curve, 2.0) == 7 and epochs_to_reach(curve, 1.0) is None


def test_summary_ratio_against_random_baseline(tmp_path):
    curves = {"random": {0: [(4, 3.0), (8, 2.0)], 1: [(4, 2.5), (8, 2.2)], 2: [(4, 2.4), (8, 2.0)]},
              "tpe+asha": {0: [(1, 4.0), (2, 1.9)], 1: [(1, 2.0), (5, 1.0)], 2: [(4, 2.5)]},
              "gp": {0: [(4, 2.0)], 1: [(4, 2.0)], 2: [(4, 2.0)]}}
    s = summarize(curves, budget=8)
    assert s["target"] == 2.0
    tpe = s["algorithms"]["tpe+asha"]
    assert tpe["reach_per_seed"] == {0: 2, 1: 1, 2: None} and tpe["reach_median"] == 2
    assert tpe["ratio"] == pytest.approx(0.25) and s["algorithms"]["random"]["ratio"] == 1.0
    table = markdown(s)
    assert "| tpe+asha | 1.900 |" in table and "| 0.25 |" in table
    assert plot(curves, s, tmp_path / "se.png").read_bytes()[:4] == b"\x89PNG"


def test_load_curves_reads_report_results(tmp_path):
    for name in ("tpe+asha", "random", "gp"):
        d = tmp_path / f"{name}_seed0"
        d.mkdir()
        d.joinpath("results.json").write_text(json.dumps({"progress": {"mode": "min"},
                                                          "history": _h(("completed", 2.0, 4))}))
    assert load_curves(tmp_path, [0])["gp"][0] == [(4, 2.0)]
    with pytest.raises(RuntimeError, match="missing"):
        load_curves(tmp_path, [1])


def test_sweep_argv_spends_the_same_budget(tmp_path):
    rnd = sweep_argv("random", 1, 32, tmp_path / "r", tmp_path, ["train.seed=0"])
    asha = sweep_argv("tpe+asha", 1, 32, tmp_path / "a", tmp_path, [])
    assert rnd[rnd.index("--num-samples") + 1] == "8" and asha[asha.index("--num-samples") + 1] == "24"
    assert rnd[-1] == "train.seed=0" and math.isfinite(float(rnd[rnd.index("--seed") + 1]))
