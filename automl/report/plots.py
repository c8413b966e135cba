"""Sweep plots: optimisation history, parallel coordinates, parameter importance.

History and parallel coordinates are Optuna's own (``optuna.visualization.matplotlib``), drawn from the
report's in-memory study (automl/report/study.py); we only add what our report needs on top: failed and
running trials on a band under the history's axis (Optuna's history draws COMPLETE trials only, and a
failure is an event, never a value) and the trial ids as its ticks. The importance figure stays ours
(see :func:`importance_figure`). :func:`render` writes the PNG and returns the same figure as inline SVG
text for the self-contained HTML report.
"""
from __future__ import annotations

import contextlib
import io
import sys
import warnings
from pathlib import Path
from typing import Sequence

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, NullFormatter

from automl.report.importance import ImportanceResult
from stereo.atomic_io import atomic_write_bytes

_UNSCORED_STYLE = {"failed": ("tab:red", "x"), "running": ("tab:gray", "."), "stopped": ("tab:orange", "|"),
                   "completed": ("tab:purple", "v")}  # completed/stopped without a finite metric


@contextlib.contextmanager
def _optuna_pyplot():
    """Optuna's plots draw through pyplot: keep their style sheet (``plt.style.use("ggplot")``), their
    experimental-API warning and their "no completed trials" log line inside this block; yields pyplot."""
    import optuna

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("agg")  # a report never opens a window; a process already using pyplot keeps its backend
    from matplotlib import pyplot as plt

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with matplotlib.rc_context(), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", "No artists with labels")  # its legend() of a history without scores
            warnings.filterwarnings("ignore", "Attempting to set identical low and high")  # one value on an axis
            yield plt
    finally:
        optuna.logging.set_verbosity(verbosity)


def _own(plt, ax) -> Figure:
    """The axes' figure, out of pyplot's registry (no leak, no global 'current figure' left behind)."""
    plt.close(ax.figure)
    return ax.figure


def _placeholder(title: str, text: str, size=(7.5, 4.0)) -> Figure:
    fig = Figure(figsize=size, dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_title(title)
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center")
    ax.set_axis_off()
    return fig


def history_figure(study, metric: str) -> Figure:
    """Optuna's optimisation history (each score and the best so far, by launch order) plus a band of the
    unscored trials (status from the study's ``status`` user attribute) and the trial ids as ticks."""
    from optuna.trial import TrialState
    from optuna.visualization.matplotlib import plot_optimization_history

    with _optuna_pyplot() as plt:
        ax = plot_optimization_history(study, target_name=metric)
        fig = _own(plt, ax)
    fig.set_size_inches(7.5, 4.0)
    fig.set_dpi(100)
    trials = study.get_trials(deepcopy=False)
    unscored = [(t.number, t.user_attrs.get("status") or "failed") for t in trials if t.state != TrialState.COMPLETE]
    if unscored:  # a band under the axis: failed/running trials are events, never values
        trans = ax.get_xaxis_transform()
        for status in sorted({s for _, s in unscored}):
            color, marker = _UNSCORED_STYLE.get(status, ("tab:red", "x"))
            xs = [n for n, s in unscored if s == status]
            ax.scatter(xs, [0.03] * len(xs), c=color, marker=marker, s=40, transform=trans, clip_on=False,
                       label=f"{status} (no score)", zorder=3)
    ax.set_xlabel("trial (launch order)")
    ax.set_title(f"Optimisation history: {metric} per trial and best so far")
    if len(trials) <= 30:
        ax.set_xticks([t.number for t in trials], [t.user_attrs.get("trial_id") or str(t.number) for t in trials],
                      rotation=60, fontsize=7)
    if len(unscored) == len(trials):
        ax.text(0.5, 0.5, "no trial has a score yet", transform=ax.transAxes, ha="center", va="center")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def parallel_figure(study, names: Sequence[str], metric: str) -> Figure:
    """Optuna's parallel coordinates of the scored trials over `names` (log axes for log-scale parameters,
    one tick per category, colour = the metric)."""
    from optuna.trial import TrialState
    from optuna.visualization.matplotlib import plot_parallel_coordinate

    title = f"Parallel coordinates: parameters -> {metric} (colour: {metric})"
    scored = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    names = [n for n in names if any(n in t.params for t in scored)]
    if not scored or not names:  # Optuna would draw empty axes and only log why
        return _placeholder(title, "no scored trial to draw", (6.0, 4.2))
    with _optuna_pyplot() as plt:
        ax = plot_parallel_coordinate(study, params=names, target_name=metric)
        fig = _own(plt, ax)
    fig.set_size_inches(max(6.0, 2.2 * (len(names) + 1)), 4.2)
    fig.set_dpi(100)
    ax.set_title(title)
    for axis in fig.axes:  # "1e-05", not mathtext 10^{-5}: its fonts are not installed everywhere (log noise)
        if axis.get_yscale() == "log":
            axis.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=True))
            axis.yaxis.set_minor_formatter(NullFormatter())
    return fig


def importance_figure(result: ImportanceResult) -> Figure:
    """Our importance (automl/report/importance.py) as bars, with each parameter's direction (Spearman rho)
    and the result's note ("needs at least 3 scored trials", "nothing explains more than noise").

    Not Optuna's ``plot_param_importances``: that one takes Optuna's evaluators (which rank worse than ours
    at our sweep sizes, see importance.py) and has no place for the direction or the note.
    """
    fig = Figure(figsize=(6.5, max(2.4, 0.5 * len(result.params) + 1.4)), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_title(f"Parameter importance ({result.n_trials} scored trials)")
    if not result.params:
        ax.text(0.5, 0.5, result.note or "nothing to rank", transform=ax.transAxes, ha="center", va="center")
        ax.set_axis_off()
        return fig
    params = list(reversed(result.params))  # most important on top
    ax.barh([p.name for p in params], [p.importance for p in params], color="tab:blue")
    for y, p in enumerate(params):
        direction = "" if p.spearman is None else f"  rho={p.spearman:+.2f}"
        ax.text(p.importance, y, f" {p.importance:.2f}{direction}", va="center", fontsize=8)
    ax.set_xlim(0, 1.25)
    ax.set_xlabel("share of explained metric variance (binned ε²)")
    if result.note:
        ax.text(0.99, 0.02, result.note, transform=ax.transAxes, ha="right", fontsize=7, color="gray")
    fig.tight_layout()
    return fig


def render(fig: Figure, png_path: str | Path) -> str:
    """Write `fig` to `png_path` atomically and return it as SVG markup (text kept as text, smaller)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(png_path, buf.getvalue())
    svg = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "stereo-automl"}):
        fig.savefig(svg, format="svg", metadata={"Date": None})  # reproducible files
    text = svg.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog/doctype: it is invalid inside HTML
