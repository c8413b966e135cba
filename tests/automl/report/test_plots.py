"""automl.plots: each figure renders to PNG + inline SVG for trial lists of every shape."""
from __future__ import annotations

import pytest

from automl.space.param import Param
from automl.report.importance import param_importance
from automl.report.plots import history_figure, importance_figure, parallel_figure, render
from automl.space.build import SearchSpace

SPACE = SearchSpace({"lr": Param.real(1e-5, 1e-1, log=True), "iters": Param.integer(2, 8),
                     "opt": Param.categorical(("AdamW", "SGD", "Adam")), "aug": Param.boolean()})


def _points(n):
    return [({"lr": 10 ** (-5 + 4 * i / max(1, n - 1)), "iters": 2 + i % 7, "opt": ("AdamW", "SGD")[i % 2],
              "aug": i % 3 == 0}, 1.0 + (i - n / 2) ** 2 / n) for i in range(n)]


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts + ax.get_xticklabels()] + \
        [ax.get_title() for ax in fig.axes]


@pytest.mark.parametrize("rows", [
    [{"trial_id": "a", "status": "completed", "metric": 2.0}],
    [{"trial_id": "a", "status": "failed", "metric": None},
     {"trial_id": "b", "status": "failed", "metric": None}],
    [{"trial_id": f"t{i}", "status": s, "metric": m} for i, (s, m) in
     enumerate([("completed", 3.0), ("failed", None), ("stopped", 4.0), ("completed", 1.0),
                ("running", None)])],
])
def test_history_renders_png_and_svg(tmp_path, rows):
    svg = render(history_figure(rows, "val/epe", "min"), tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG" and svg.startswith("<svg")


def test_history_best_so_far_line_is_monotone_and_failures_have_no_value():
    rows = [{"trial_id": f"t{i}", "status": s, "metric": m} for i, (s, m) in
            enumerate([("completed", 3.0), ("failed", None), ("completed", 5.0), ("completed", 1.0)])]
    fig = history_figure(rows, "val/epe", "min")
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("best so far")]
    assert list(line.get_ydata()) == [3.0, 3.0, 3.0, 1.0]
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "failed (no score)" in labels


def test_parallel_coordinates_axes_show_log_and_categories(tmp_path):
    fig = parallel_figure(_points(9), list(SPACE.names), "val/epe", "min", SPACE, best_index=4)
    texts = _texts(fig)
    assert "lr (log)" in texts and "iters" in texts and "val/epe" in texts
    assert {"AdamW", "SGD", "Adam", "True", "False"} <= set(texts)  # every category gets its tick
    assert "1e-05" in texts and "0.1" in texts  # the search range, not just the sampled span
    lines = [ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "trial"]
    assert len(lines) == 9 and max(ln.get_linewidth() for ln in lines) == 2.6  # the best is highlighted
    render(fig, tmp_path / "p.png")


def test_parallel_coordinates_without_space_or_scores(tmp_path):
    fig = parallel_figure(_points(3), ["lr", "opt"], "val/epe", "min", None)
    assert len([ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "trial"]) == 3
    empty = parallel_figure([], ["lr"], "val/epe", "min", SPACE)
    assert "no scored trial to draw" in _texts(empty)
    render(empty, tmp_path / "e.png")


def test_importance_bars_follow_the_ranking(tmp_path):
    result = param_importance(_points(12), list(SPACE.names))
    fig = importance_figure(result)
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert ticks[::-1] == [p.name for p in result.params]
    render(fig, tmp_path / "i.png")
    few = importance_figure(param_importance(_points(2)))
    assert any("at least 3" in t for t in _texts(few))
