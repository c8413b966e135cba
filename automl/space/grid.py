"""Grid search points: every combination of the parameters' grid values that satisfies the relations.

Floats get ``per_float`` evenly spaced values (log-spaced for log ranges), ints every step, categorical
and power-of parameters every choice, bools both. Combinations that violate a ``depends_on`` are dropped
and counted in the notes. Ray-free and Optuna-free: automl/tune/backend.py enqueues the points in the study.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Dict, List, Tuple

from automl.space.build import SearchSpace


def grid_points(space: SearchSpace, per_float: int) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Every combination that satisfies the relations (dropped ones are counted in the notes)."""
    axes = []
    for name, dist in space.items():
        if dist.kind == "float":
            lo, hi = dist.closed_low, dist.closed_high
            if dist.log:
                values = [math.exp(math.log(lo) + i * (math.log(hi) - math.log(lo)) / (per_float - 1))
                          for i in range(per_float)]
            else:
                values = [lo + i * (hi - lo) / (per_float - 1) for i in range(per_float)]
            values = [min(max(v, lo), hi) for v in values]
        elif dist.kind == "int":
            values = list(range(dist.low, dist.high + 1, dist.step))
        else:  # power_of, categorical, bool
            values = list(dist.choices)
        axes.append((name, values))
    points, dropped = [], 0
    for combo in itertools.product(*(v for _, v in axes)):
        point = dict(zip((n for n, _ in axes), combo))
        if space.problems(point):
            dropped += 1
        else:
            points.append(point)
    notes = [f"grid: {len(points)} point(s)" + (f", {dropped} dropped for violating depends_on" if dropped else "")]
    return points, notes
