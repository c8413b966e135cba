"""`evaluate.on_size_mismatch` / `inference.on_size_mismatch`: what happens to an image whose size is not
the deployed graph's input size, and how the user is told.

A static ONNX graph / engine takes one H×W. Images of another size are never fitted silently:

| policy | an image smaller than the input | an image larger than the input |
|---|---|---|
| `resize` (default) | padded (edge replication) | shrunk keeping the aspect ratio, then padded |
| `pad` | padded | bad input (exit 2): re-export at its size or use `resize` |
| `error` | bad input (exit 2) | bad input (exit 2) |

For a dynamic-H/W graph only a resize counts (rounding up to a multiple of 32 is the network's own
padding), unless `input_height`/`input_width` pin the size, which then acts like a static input.

Every fitted image is counted by (native size, graph size, how); the first one is reported as soon as it
is seen and the totals at the end: a console line (logging WARNING), a status.json line with verbosity
WARNING, KPIs `size_mismatch_images` / `resized_images` / `padded_images` (status.json and MLflow) and
the MLflow tag `size_mismatch` holding the summary line.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from stereo.deploy.engine_io import HW, EngineShape, Fit
from stereo.errors import SizeMismatchError

SIZE_POLICIES = ("resize", "pad", "error")
DEFAULT_POLICY = "resize"


def ignored_request(engine: EngineShape, requested: HW | None, section: str) -> str | None:
    """The warning for `<section>.input_height/width` that a static graph cannot honour (None if fine)."""
    if engine.hw is None or requested is None or tuple(requested) == tuple(engine.hw):
        return None
    return (f"{section}.input_height/input_width ask for {_hw(requested)} but the graph is static at "
            f"{_hw(engine.hw)}: the graph's size is used; re-export at {_hw(requested)} (export.input_height/"
            f"width) or set {section}.input_height/input_width to {engine.hw[0]}/{engine.hw[1]}")


def _hw(hw: HW) -> str:
    return f"{hw[0]}x{hw[1]}"


@dataclass
class SizeMismatches:
    """Applies the policy to each Fit and counts what was done. `key`: the spec key (for messages)."""
    engine: EngineShape
    policy: str = DEFAULT_POLICY
    key: str = "evaluate.on_size_mismatch"
    pinned: bool = False  # input_height/width set for a dynamic graph
    counts: Counter = field(default_factory=Counter)  # (orig_hw, target_hw, how) -> images
    images: int = 0

    def __post_init__(self) -> None:
        if self.policy not in SIZE_POLICIES:
            raise SizeMismatchError(f"{self.key}={self.policy!r}; use one of {', '.join(SIZE_POLICIES)}")

    def differs(self, fit: Fit) -> bool:
        if self.engine.hw is not None or self.pinned:
            return fit.orig_hw != fit.target_hw
        return fit.resized

    def check(self, fit: Fit, name: str = "") -> str | None:
        """Count `fit`; raise SizeMismatchError when the policy refuses it. Returns a warning line for the
        first mismatching image (None otherwise)."""
        self.images += 1
        if not self.differs(fit):
            return None
        how = "resized+padded" if fit.resized else "padded"
        sample = f" ({name!r})" if name else ""
        if self.policy == "error" or (self.policy == "pad" and fit.resized):
            fix = ("re-export the graph at the images' size (export.input_height/width, or export.dynamic_hw for "
                   f"FFS) or set {self.key}: " + ("pad or resize" if self.policy == "error" else "resize"))
            raise SizeMismatchError(f"image{sample} is {_hw(fit.orig_hw)} but the graph input is "
                                    f"{_hw(fit.target_hw)} and {self.key} is {self.policy!r}; {fix}")
        first = not self.counts
        self.counts[(fit.orig_hw, fit.target_hw, how)] += 1
        if first:
            return (f"image{sample} is {_hw(fit.orig_hw)} but the graph input is {_hw(fit.target_hw)}: "
                    f"{self._verb(how)} ({self.key}: {self.policy}); metrics are in the graph's frame; a count "
                    "follows at the end")
        return None

    @staticmethod
    def _verb(how: str) -> str:
        return "shrunk keeping the aspect ratio, then padded" if how == "resized+padded" else "padded"

    @property
    def mismatched(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str | None:
        """One line: how many images differed, their sizes and the graph's, what was done; None if none."""
        if not self.counts:
            return None
        parts = [f"{n} x {_hw(orig)} -> {_hw(target)} {how}"
                 for (orig, target, how), n in sorted(self.counts.items(), key=lambda kv: -kv[1])]
        return (f"{self.mismatched} of {self.images} images differ from the graph input size: "
                f"{'; '.join(parts)} ({self.key}: {self.policy}; set it to 'error' to refuse, or re-export the "
                "graph at the images' size)")

    def kpi(self) -> dict[str, float]:
        resized = sum(n for (_, _, how), n in self.counts.items() if how == "resized+padded")
        return {"size_mismatch_images": float(self.mismatched), "resized_images": float(resized),
                "padded_images": float(self.mismatched - resized)}
