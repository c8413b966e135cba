"""The anytime plot: best val EPE so far vs trial-epochs, median over seeds with the IQR as a band."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from bench.search_efficiency.algorithms import LABELS
from bench.search_efficiency.analysis import anytime_band

STYLES = {"tpe+asha": ("tab:blue", "-"), "tpe": ("tab:cyan", "--"), "random+asha": ("tab:orange", "-"),
          "random": ("tab:gray", "-"), "gp": ("tab:green", "--"), "optuna": ("tab:purple", ":")}


def anytime_plot(curves: Mapping[str, Mapping[int, Any]], summary: Mapping[str, Any], path: Path,
                 title: str = "") -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    budget = int(summary["budget"])
    fig = Figure(figsize=(8, 5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, per_seed in curves.items():
        band = anytime_band(list(per_seed.values()), budget)
        if not band:
            continue
        color, ls = STYLES.get(name, (None, "-"))
        xs = [b[0] for b in band]
        ax.fill_between(xs, [b[1] for b in band], [b[3] for b in band], step="post", color=color, alpha=0.12)
        ax.step(xs, [b[2] for b in band], where="post", color=color, ls=ls, lw=1.8,
                label=f"{LABELS.get(name, name)} ({len(per_seed)} seeds)")
    ax.axhline(summary["target"], color="black", ls="--", lw=0.8, label="random search's median final best")
    for frac in (0.25, 0.5):
        ax.axvline(frac * budget, color="tab:red", ls=":", lw=0.7)
    ax.set_xlim(0, budget * 1.01)
    ax.set_xlabel(f"compute spent (trial-epochs; budget {budget}; dotted: 25 % and 50 %)")
    ax.set_ylabel("best val EPE so far (px): median, band = IQR over seeds")
    ax.set_title(title or "Search efficiency: anytime best")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
