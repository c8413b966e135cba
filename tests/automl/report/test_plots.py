"""automl/report/plots.py: Optuna's history and parallel coordinates drawn from the report's study (plus our
band of unscored trials), our importance bars; each renders to PNG + inline SVG for trial lists of every shape."""
from __future__ import annotations

import pytest

from automl.report.importance import param_importance
from automl.report.plots import history_figure, importance_figure, parallel_figure, render
from automl.report.study import report_study
from automl.space.build import SearchSpace
from automl.space.param import Param

SPACE = SearchSpace({"lr": Param.real(1e-5, 1e-1, log=True), "iters": Param.integer(2, 8),
                     "opt": Param.categorical(("AdamW", "SGD", "Adam")), "aug": Param.boolean()})


def _points(n):
    return [({"lr": 10 ** (-5 + 4 * i / max(1, n - 1)), "iters": 2 + i % 7, "opt": ("AdamW", "SGD")[i % 2],
              "aug": i % 3 == 0}, 1.0 + (i - n / 2) ** 2 / n) for i in range(n)]


def _study(points, space=SPACE, statuses=None):
    trials = [{"trial_id": f"t{i}", "status": (statuses or {}).get(i, "completed"), "params": p, "metric": m}
              for i, (p, m) in enumerate(points)]
    return report_study(trials, space, "min")


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts + ax.get_xticklabels() + ax.get_yticklabels()] + \
        [ax.get_title() for ax in fig.axes]


@pytest.mark.parametrize("rows", [
    [("completed", 2.0)],
    [("failed", None), ("failed", None)],
    [("completed", 3.0), ("failed", None), ("stopped", 4.0), ("completed", 1.0), ("running", None)],
])
def test_history_renders_png_and_svg(tmp_path, rows):
    study = report_study([{"trial_id": f"t{i}", "status": s, "params": {}, "metric": m}
                          for i, (s, m) in enumerate(rows)], None, "min")
    svg = render(history_figure(study, "val/epe"), tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG" and svg.startswith("<svg")


def test_history_best_so_far_line_is_monotone_and_failures_have_no_value():
    rows = [("completed", 3.0), ("failed", None), ("completed", 5.0), ("completed", 1.0)]
    study = report_study([{"trial_id": f"t{i}", "status": s, "params": {}, "metric": m}
                          for i, (s, m) in enumerate(rows)], None, "min")
    fig = history_figure(study, "val/epe")
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "Best Value"]
    assert list(line.get_ydata()) == [3.0, 3.0, 3.0, 1.0]  # Optuna's best so far; the failure adds no value
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "failed (no score)" in labels
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["t0", "t1", "t2", "t3"]
    empty = history_figure(report_study([{"trial_id": "a", "status": "failed", "params": {}, "metric": None}]),
                           "val/epe")
    assert "no trial has a score yet" in _texts(empty)


def test_parallel_coordinates_axes_show_log_and_categories(tmp_path):
    fig = parallel_figure(_study(_points(9)), list(SPACE.names), "val/epe")
    render(fig, tmp_path / "p.png")  # tick labels get their text when drawn
    texts = _texts(fig)
    assert {"lr", "iters", "opt", "aug"} <= set(texts) and "Parallel coordinates: parameters -> val/epe" in \
        " ".join(texts)
    assert {"AdamW", "SGD", "True", "False"} <= set(texts)  # every sampled category gets its tick
    log_axes = [ax for ax in fig.axes if ax.get_yscale() == "log"]  # Optuna reads the distribution's log flag
    assert len(log_axes) == 1 and "1e-05" in [t.replace("\u2212", "-") for t in texts]


def test_parallel_coordinates_without_space_or_scores(tmp_path):
    fig = parallel_figure(_study(_points(3), space=None), ["lr", "opt"], "val/epe")
    assert {"lr", "opt"} <= set(_texts(fig))
    render(fig, tmp_path / "p.png")
    empty = parallel_figure(_study(_points(2), statuses={0: "failed", 1: "failed"}), ["lr"], "val/epe")
    assert "no scored trial to draw" in _texts(empty)
    render(empty, tmp_path / "e.png")


def test_plots_leave_pyplot_and_its_style_as_they_were():
    import matplotlib
    from matplotlib import pyplot as plt

    before = (dict(matplotlib.rcParams), plt.get_fignums())
    history_figure(_study(_points(4)), "val/epe")
    parallel_figure(_study(_points(4)), ["lr"], "val/epe")
    assert (dict(matplotlib.rcParams), plt.get_fignums()) == before  # no ggplot style, no figure left open


def test_importance_bars_follow_the_ranking(tmp_path):
    result = param_importance(_points(12), list(SPACE.names))
    fig = importance_figure(result)
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert ticks[::-1] == [p.name for p in result.params]
    render(fig, tmp_path / "i.png")
    few = importance_figure(param_importance(_points(2)))
    assert any("at least 3" in t for t in _texts(few))
