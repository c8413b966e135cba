"""Sweep plots: optimisation history, parallel coordinates, parameter importance.

Each ``*_figure`` builds a matplotlib Figure without pyplot (no global state, no display needed, safe in
threads); :func:`render` writes the PNG and returns the same figure as inline SVG text for the
self-contained HTML report. Failed trials never get a score: the history marks them on a separate band
below the axis instead of plotting a number.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from automl.report.importance import ImportanceResult
from stereo.atomic_io import atomic_write_bytes

_STATUS_STYLE = {"completed": ("tab:blue", "o"), "stopped": ("tab:orange", "s")}
_UNSCORED_STYLE = {"failed": ("tab:red", "x"), "running": ("tab:gray", "."), "stopped": ("tab:orange", "|"),
                   "completed": ("tab:purple", "v")}  # completed without a finite metric


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _better(a: float, b: float, mode: str) -> bool:
    return a < b if mode == "min" else a > b


def history_figure(rows: Sequence[Mapping[str, Any]], metric: str, mode: str) -> Figure:
    """`rows`: one dict per trial in launch order: ``trial_id``, ``status``, ``metric`` (None = no score)."""
    fig = Figure(figsize=(7.5, 4.0), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    best, best_x, best_y = None, [], []
    unscored = []
    for i, row in enumerate(rows):
        value = row.get("metric")
        if row.get("status") in _STATUS_STYLE and _finite(value):
            color, marker = _STATUS_STYLE[row["status"]]
            ax.scatter([i], [value], c=color, marker=marker, s=28, zorder=3)
            if best is None or _better(value, best, mode):
                best = value
        else:
            unscored.append((i, row.get("status", "failed")))
        if best is not None:
            best_x.append(i)
            best_y.append(best)
    if best_x:
        ax.step(best_x, best_y, where="post", color="black", lw=1.4, label=f"best so far ({mode})")
    for status, (color, marker) in _STATUS_STYLE.items():
        ax.scatter([], [], c=color, marker=marker, label=status)
    if unscored:  # a band under the axis: failed/running trials are events, never values
        trans = ax.get_xaxis_transform()
        for status in sorted({s for _, s in unscored}):
            color, marker = _UNSCORED_STYLE.get(status, ("tab:red", "x"))
            xs = [i for i, s in unscored if s == status]
            ax.scatter(xs, [0.03] * len(xs), c=color, marker=marker, s=40, transform=trans, clip_on=False,
                       label=f"{status} (no score)", zorder=3)
    ax.set_xlabel("trial (launch order)")
    ax.set_ylabel(metric)
    ax.set_title(f"Optimisation history: {metric} per trial and best so far")
    if len(rows) <= 30:
        ax.set_xticks(range(len(rows)), [str(r.get("trial_id", i)) for i, r in enumerate(rows)],
                      rotation=60, fontsize=7)
    if not best_x:
        ax.text(0.5, 0.5, "no trial has a score yet", transform=ax.transAxes, ha="center", va="center")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def _axis(name: str, values: Sequence[Any], dist: Any) -> tuple:
    """(to-unit function, tick positions, tick labels, axis label) for one parallel-coordinates axis."""
    kind = getattr(dist, "kind", "float")
    numeric = all(_finite(v) for v in values) and kind not in ("categorical", "bool")
    if numeric:
        lo = getattr(dist, "low", None) if dist is not None and dist.kind != "power_of" else None
        hi = getattr(dist, "high", None) if dist is not None and dist.kind != "power_of" else None
        lo = min(values) if lo is None else min(lo, min(values))
        hi = max(values) if hi is None else max(hi, max(values))
        log = bool(getattr(dist, "log", False)) or getattr(dist, "kind", "") == "power_of"
        log = log and lo > 0
        f = (lambda v: math.log10(v)) if log else (lambda v: float(v))
        a, b = f(lo), f(hi)
        span = (b - a) or 1.0

        def unit(v):
            return (f(v) - a) / span
        ticks = [0.0, 1.0] if b != a else [0.0]
        labels = [f"{lo:.3g}", f"{hi:.3g}"][:len(ticks)]
        return unit, ticks, labels, name + (" (log)" if log else "")
    choices = list(getattr(dist, "choices", ()) or ([False, True] if kind == "bool" else []))
    for v in values:
        if not any(repr(v) == repr(c) for c in choices):
            choices.append(v)
    index = {repr(c): i for i, c in enumerate(choices)}
    denom = max(1, len(choices) - 1)
    return (lambda v: index[repr(v)] / denom), [i / denom for i in range(len(choices))], \
        [str(c) for c in choices], name


def parallel_figure(points: Sequence[tuple], names: Sequence[str], metric: str, mode: str,
                    space: Any = None, best_index: Optional[int] = None) -> Figure:
    """`points`: [(params, metric)] of scored trials; one axis per parameter plus the metric."""
    fig = Figure(figsize=(max(6.0, 2.2 * (len(names) + 1)), 4.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_title(f"Parallel coordinates: parameters -> {metric} (colour: {metric})")
    scored = [(p, m) for p, m in points if _finite(m)]
    if not scored or not names:
        ax.text(0.5, 0.5, "no scored trial to draw", transform=ax.transAxes, ha="center", va="center")
        ax.set_axis_off()
        return fig
    dists = getattr(space, "params", {}) if space is not None else {}
    axes = []
    for name in names:
        vals = [p[name] for p, _ in scored if name in p]
        axes.append(_axis(name, vals, dists.get(name)))
    metrics = [m for _, m in scored]
    axes.append(_axis(metric, metrics, None))
    lo, hi = min(metrics), max(metrics)
    cmap = matplotlib.colormaps["viridis_r" if mode == "min" else "viridis"]  # best trials are bright yellow
    norm = matplotlib.colors.Normalize(lo, hi if hi > lo else lo + 1)
    for i, (params, m) in enumerate(scored):
        ys = [unit(params[n]) if n in params else math.nan for (unit, *_), n in zip(axes, names)]
        ys.append(axes[-1][0](m))
        is_best = i == best_index
        ax.plot(range(len(ys)), ys, color="tab:red" if is_best else cmap(norm(m)), lw=2.6 if is_best else 1.2,
                alpha=1.0 if is_best else 0.8, zorder=3 if is_best else 2, gid="trial")
    for x, (_, ticks, labels, _label) in enumerate(axes):
        ax.axvline(x, color="black", lw=0.8)
        for t, text in zip(ticks, labels):
            ax.text(x + 0.03, t, text, fontsize=7, va="center")
    ax.set_xticks(range(len(axes)), [a[3] for a in axes], fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(axes) - 0.6)
    ax.set_ylim(-0.08, 1.08)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=metric, pad=0.01)
    fig.tight_layout()
    return fig


def importance_figure(result: ImportanceResult) -> Figure:
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
