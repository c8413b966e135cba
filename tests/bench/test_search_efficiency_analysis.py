"""bench/search_efficiency analysis on synthetic curves and histories (no sweep is run here)."""
from __future__ import annotations

import json
import math

import pytest

from bench.search_efficiency.__main__ import load_curves, results_table, wall_times
from bench.search_efficiency.algorithms import ALGORITHMS, num_samples, sampler_seed, sweep_argv
from bench.search_efficiency.analysis import (anytime_band, best_within, compute_curve, epochs_to_reach, goal_check,
                                              quartiles, summarize, win_probability)
from bench.search_efficiency.plot import anytime_plot


def _h(*trials):
    return [{"trial_id": f"t{i}", "status": s, "metric": m, "epochs": e} for i, (s, m, e) in enumerate(trials)]


def test_curve_counts_compute_of_every_finished_trial_and_only_scores_of_scored_ones():
    hist = _h(("completed", 3.0, 4), ("failed", None, 2), ("stopped", 5.0, 1), ("completed", 1.5, 4),
              ("running", None, 3))
    assert compute_curve(hist) == [(4, 3.0), (6, 3.0), (7, 3.0), (11, 1.5)]
    assert compute_curve(hist, "max") == [(4, 3.0), (6, 3.0), (7, 5.0), (11, 5.0)]
    assert compute_curve(_h(("completed", math.nan, 4))) == [(4, None)]


def test_best_within_and_epochs_to_reach_respect_the_budget():
    curve = [(4, 3.0), (6, 3.0), (7, 2.0), (11, 1.5)]
    assert best_within(curve, 6) == 3.0 and best_within(curve, 100) == 1.5 and best_within(curve, 3) is None
    assert epochs_to_reach(curve, 2.0) == 7 and epochs_to_reach(curve, 1.0) == math.inf
    assert epochs_to_reach(curve, 1.5, budget=10) == math.inf  # reached only after the budget


def test_quartiles_interpolate_and_keep_infinity():
    assert quartiles([1, 2, 3, 4, 5]) == (2, 3, 4)
    assert quartiles([1.0, 2.0]) == (1.25, 1.5, 1.75)
    assert quartiles([1, math.inf, math.inf]) == (math.inf, math.inf, math.inf)
    assert quartiles([4, 8, math.inf]) == (6, 8, math.inf)
    with pytest.raises(ValueError):
        quartiles([])


def test_win_probability_over_all_seed_pairs_ties_count_half_unscored_loses():
    assert win_probability([1.0, 2.0], [1.5, 3.0]) == pytest.approx(3 / 4)
    assert win_probability([1.0], [1.0]) == 0.5
    assert win_probability([None], [5.0]) == 0.0 and win_probability([5.0], [None]) == 1.0
    assert win_probability([2.0], [1.0], mode="max") == 1.0
    with pytest.raises(ValueError):
        win_probability([], [1.0])


def test_anytime_band_starts_when_every_seed_has_a_score():
    curves = [[(2, 5.0), (4, 3.0)], [(4, 4.0), (8, 2.0)]]
    band = anytime_band(curves, 8, step=2)
    assert band[0] == (4, 3.25, 3.5, 3.75)
    assert band[-1] == (8, 2.25, 2.5, 2.75)


def _curves():
    # "good" gets its best early; "random" late and worse; seeds differ
    return {"random": {0: [(4, 5.0), (8, 4.0), (16, 3.0)], 1: [(4, 6.0), (12, 4.0), (16, 3.5)]},
            "tpe+asha": {0: [(1, 4.0), (4, 2.5), (16, 2.0)], 1: [(2, 3.2), (8, 2.8), (16, 2.7)]}}


def test_summary_reports_quartiles_win_probabilities_and_compute_to_reach():
    s = summarize(_curves(), budget=16)
    assert s["target"] == 3.25  # median of random's final bests 3.0 and 3.5
    good = s["algorithms"]["tpe+asha"]
    assert good["at"][0.25]["quartiles"] == pytest.approx((2.675, 2.85, 3.025))  # bests within 4: 2.5, 3.2
    assert good["at"][1.0]["p_beats_baseline"] == 1.0
    assert good["reach"] == [4.0, 2.0] and good["reach_median"] == 3.0 and good["reach_ratio"] == 3 / 16
    base = s["algorithms"]["random"]
    assert base["at"][1.0]["p_beats_baseline"] == 0.5 and base["reach"] == [16.0, math.inf]
    assert goal_check(s) == {"p_half": 1.0, "ratio": 0.1875, "p_met": True, "ratio_met": True, "met": True}


def test_summary_needs_the_baseline():
    with pytest.raises(ValueError, match="random"):
        summarize({"tpe+asha": _curves()["tpe+asha"]}, budget=16)


def test_sampler_seeds_differ_across_algorithms_and_are_stable():
    seeds = {sampler_seed(name, s) for name in ALGORITHMS for s in range(10)}
    assert len(seeds) == len(ALGORITHMS) * 10
    assert sampler_seed("tpe+asha", 3) == sampler_seed("tpe+asha", 3) < 2 ** 31


def test_sweep_argv_gives_asha_more_launches_for_the_same_budget():
    assert num_samples("random", 24, 4) == 6 and num_samples("tpe+asha", 24, 4) == 15
    argv = sweep_argv("tpe+asha", 2, 40, 4, "/x", "/s.yaml", "tiny-demo", ["a=1"])
    assert argv[argv.index("--seed") + 1] == str(sampler_seed("tpe+asha", 2))
    assert argv[argv.index("--scheduler") + 1] == "asha" and argv[-1] == "a=1"


def test_analysis_reads_finished_sweeps_and_skips_unfinished(tmp_path, capsys):
    for name, seed, hist, complete in (("random", 0, _h(("completed", 4.0, 4), ("completed", 3.0, 4)), True),
                                       ("random", 1, _h(("completed", 3.5, 4)), True),
                                       ("tpe+asha", 0, _h(("stopped", 3.8, 1), ("completed", 2.0, 4)), True),
                                       ("tpe+asha", 1, _h(("completed", 2.0, 4)), False)):
        run = tmp_path / "sweeps" / f"{name}_seed{seed}"
        run.mkdir(parents=True)
        (run / "results.json").write_text(json.dumps({"history": hist,
                                                      "progress": {"complete": complete, "mode": "min"}}))
    (tmp_path / "walls.json").write_text(json.dumps({"random_seed0": {"wall_s": 30.0, "exit": 0, "resumed": False},
                                                     "random_seed1": {"wall_s": 50.0, "exit": 0, "resumed": True}}))
    curves = load_curves(tmp_path, [0, 1], ["random", "tpe+asha"])
    assert curves["random"][0] == [(4, 4.0), (8, 3.0)] and list(curves["tpe+asha"]) == [0]
    assert "tpe+asha_seed1 has not finished" in capsys.readouterr().err
    walls = wall_times(tmp_path)
    assert walls == {"random": [30.0]}  # a resumed sweep's wall time covers only part of it
    summary = summarize(curves, 8)
    table = results_table(summary, walls)
    assert "| TPE + ASHA (default) | 1 |" in table and "| 30 |" in table
    png = anytime_plot(curves, summary, tmp_path / "p.png")
    assert png.stat().st_size > 10_000


def test_analyze_only_compares_the_seeds_every_algorithm_finished(tmp_path, capsys):
    from bench.search_efficiency.__main__ import main

    for name, seed, hist in (("random", 0, _h(("completed", 4.0, 4), ("completed", 3.0, 4))),
                             ("random", 1, _h(("completed", 3.5, 4), ("completed", 3.4, 4))),
                             ("tpe+asha", 0, _h(("stopped", 3.8, 1), ("completed", 2.0, 4), ("stopped", 5.0, 1)))):
        run = tmp_path / "sweeps" / f"{name}_seed{seed}"
        run.mkdir(parents=True)
        (run / "results.json").write_text(json.dumps({"history": hist, "progress": {"complete": True, "mode": "min"}}))
    code = main(["--root", str(tmp_path), "--budget", "8", "--seeds", "0", "1", "--algorithms", "tpe+asha", "random",
                 "--analyze-only"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "seeds finished by every algorithm: [0]" in err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["seeds"] == [0] and summary["summary"]["target"] == 3.0
    assert summary["goal"]["p_half"] == 1.0 and summary["goal"]["ratio"] == 5 / 8
    table = (tmp_path / "table.md").read_text()
    # random has no score within 25 % of the budget: a seed without a score loses every pair
    assert "| TPE + ASHA (default) | 1 | 3.800 (3.800-3.800) | 3.800 (3.800-3.800) | 2.000 (2.000-2.000) | " \
           "1.00 | 1.00 | 1.00 | 5 | 0.62 | 3 |" in table
    assert (tmp_path / "anytime.png").stat().st_size > 10_000 and "NOT met" in out  # 0.62x > 0.5x
