"""Pure functions over finished sweeps: anytime curves, quantiles at budget fractions, win probabilities.

A *curve* is ``[(trial-epochs spent, best metric so far or None), ...]`` after each finished trial, in
launch order. Compute is counted in trial-epochs: an early-stopped trial costs the epochs it ran, a
failed one what it ran before failing. Everything here assumes the metric is minimised (val EPE); pass
``mode="max"`` where a function takes it.
"""
from __future__ import annotations

import math
import statistics
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

Curve = List[Tuple[int, Optional[float]]]
FRACTIONS = (0.25, 0.5, 1.0)


def compute_curve(history: Sequence[Mapping[str, Any]], mode: str = "min") -> Curve:
    """[(cumulative trial-epochs, best so far or None)] after each finished trial in launch order."""
    curve: Curve = []
    spent, best = 0, None
    for trial in history:
        if trial.get("status") == "running":
            continue
        spent += int(trial.get("epochs") or 0)
        value = trial.get("metric")
        scored = (trial.get("status") in ("completed", "stopped") and isinstance(value, (int, float))
                  and math.isfinite(value))
        if scored and (best is None or (value < best if mode == "min" else value > best)):
            best = float(value)
        curve.append((spent, best))
    return curve


def best_within(curve: Sequence[Tuple[int, Optional[float]]], budget: float) -> Optional[float]:
    """Best metric found using at most `budget` trial-epochs (None: nothing scored by then)."""
    found = [b for spent, b in curve if spent <= budget and b is not None]
    return found[-1] if found else None


def epochs_to_reach(curve: Sequence[Tuple[int, Optional[float]]], target: float, mode: str = "min",
                    budget: float = math.inf) -> float:
    """Trial-epochs spent when the best first reaches `target`; inf when it does not within `budget`."""
    for spent, best in curve:
        if spent > budget:
            break
        if best is not None and (best <= target if mode == "min" else best >= target):
            return float(spent)
    return math.inf


def quartiles(values: Sequence[float]) -> Tuple[float, float, float]:
    """(25th, 50th, 75th percentile), linear interpolation between order statistics; inf allowed."""
    xs = sorted(values)
    if not xs:
        raise ValueError("quartiles of no values")

    def q(p: float) -> float:
        pos = p * (len(xs) - 1)
        lo, hi = math.floor(pos), math.ceil(pos)
        if lo == hi or xs[lo] == xs[hi]:
            return xs[lo]
        return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)

    return q(0.25), q(0.5), q(0.75)


def win_probability(ours: Sequence[Optional[float]], theirs: Sequence[Optional[float]], mode: str = "min") -> float:
    """P(ours beats theirs) over every (our seed, their seed) pair; a tie counts one half, no score loses.

    Pairs across seeds (not only seed i vs seed i) because the seeds of two algorithms are unrelated
    draws: the pairing carries no information, and all pairs give the lower-variance estimate."""
    if not ours or not theirs:
        raise ValueError("win_probability needs at least one seed on each side")
    bad = math.inf if mode == "min" else -math.inf
    total = 0.0
    for a in ours:
        for b in theirs:
            a_, b_ = bad if a is None else a, bad if b is None else b
            if a_ == b_:
                total += 0.5
            elif (a_ < b_) if mode == "min" else (a_ > b_):
                total += 1.0
    return total / (len(ours) * len(theirs))


def anytime_band(curves: Sequence[Sequence[Tuple[int, Optional[float]]]], budget: int,
                 step: int = 1) -> List[Tuple[int, float, float, float]]:
    """[(trial-epochs, q25, median, q75)] of best-so-far over seeds at every `step` up to `budget`,
    from the first point where every seed has a score."""
    out = []
    for x in range(step, budget + 1, step):
        values = [best_within(c, x) for c in curves]
        if values and all(v is not None for v in values):
            out.append((x, *quartiles(values)))
    return out


def summarize(curves: Mapping[str, Mapping[int, Curve]], budget: int, baseline: str = "random",
              mode: str = "min") -> Dict[str, Any]:
    """Per algorithm: quartiles of the best at 25/50/100 % of the budget, P(beats the baseline) at each
    fraction, and the trial-epochs to reach the baseline's median final best (median over seeds)."""
    if baseline not in curves:
        raise ValueError(f"no {baseline!r} sweeps to compare with (have: {', '.join(curves) or 'none'})")
    base_final = [best_within(c, budget) for c in curves[baseline].values()]
    scored = [b for b in base_final if b is not None]
    if not scored:
        raise ValueError(f"the {baseline} baseline scored nothing within {budget} trial-epochs")
    target = statistics.median(scored)
    out: Dict[str, Any] = {"budget": budget, "baseline": baseline, "target": target, "algorithms": {}}
    for name, per_seed in curves.items():
        row: Dict[str, Any] = {"seeds": sorted(per_seed), "at": {}}
        for frac in FRACTIONS:
            b = budget * frac
            bests = [best_within(c, b) for c in per_seed.values()]
            base = [best_within(c, b) for c in curves[baseline].values()]
            finite = [x for x in bests if x is not None]
            row["at"][frac] = {"quartiles": quartiles(finite) if finite else None, "unscored": len(bests) - len(finite),
                               "p_beats_baseline": win_probability(bests, base, mode)}
        reach = [epochs_to_reach(c, target, mode, budget) for c in per_seed.values()]
        row["reach"] = reach
        row["reach_median"] = quartiles(reach)[1]
        row["reach_ratio"] = row["reach_median"] / budget
        row["trials_median"] = statistics.median(len(c) for c in per_seed.values())
        out["algorithms"][name] = row
    return out


def goal_check(summary: Mapping[str, Any], name: str = "tpe+asha", p_goal: float = 0.7,
               ratio_goal: float = 0.5) -> Dict[str, Any]:
    """The goal: `name` beats the baseline in >= p_goal of seed pairs at half the budget and reaches the
    baseline's median final best with <= ratio_goal of its compute."""
    row = summary["algorithms"][name]
    p = row["at"][0.5]["p_beats_baseline"]
    ratio = row["reach_ratio"]
    return {"p_half": p, "ratio": ratio, "p_met": p >= p_goal, "ratio_met": ratio <= ratio_goal,
            "met": p >= p_goal and ratio <= ratio_goal}
