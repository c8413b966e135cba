"""What a `depth_net` user sees on the console while an action runs: its first line, then progress bars.

* :func:`announce` prints `depth_net <action>: spec <file>, results_dir <dir>` on stdout the moment the
  CLI has parsed its arguments — before torch, Lightning or MLflow are imported (they take seconds to load), so a
  user knows at once which spec and folder the run uses. It reads only the YAML (and the overrides).
* :func:`progress` wraps every loop over data (evaluate, inference, deploy evaluate / inference) in a tqdm
  bar on stdout: count / total, rate and ETA; :func:`note` announces long single steps (export's trace and
  ONNX Runtime check, a TensorRT build).

Both go to **stdout**, with the action's result (JSON) last; stderr is kept for warnings and the one line
per problem that a failing run prints.

This module imports only the standard library and PyYAML at import time.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
#: set to 0 to silence the bars (the first line is always printed)
PROGRESS_ENV = "STEREO_PROGRESS"


def announce(action: str, spec_file: str | None, overrides: Sequence[str] = (), *, stream=None) -> str:
    """Print and return the first line of an action: action, spec and results folder."""
    results = _results_dir(action, spec_file, overrides)
    spec = spec_file if spec_file else "(key=value pairs only)"
    line = f"depth_net {action}: spec {spec}, results_dir {results}"
    print(line, file=stream or sys.stdout, flush=True)  # stderr stays one line per problem
    return line


def _results_dir(action: str, spec_file: str | None, overrides: Sequence[str]) -> str:
    """Best effort, from the raw YAML and overrides (the spec is checked properly right after)."""
    raw: dict[str, Any] = {}
    if spec_file:
        try:
            import yaml

            with open(spec_file, encoding="utf-8") as fh:
                loaded = yaml.safe_load(fh)
            raw = loaded if isinstance(loaded, dict) else {}
        except Exception as exc:  # noqa: BLE001 - a missing file or YAML error is reported by the loader next
            return f"(unknown: {type(exc).__name__})"
    values = {k.strip(): v.strip() for k, sep, v in (o.partition("=") for o in overrides) if sep}
    section = raw.get(action) if isinstance(raw.get(action), dict) else {}
    own = values.get(f"{action}.results_dir") or (section or {}).get("results_dir")
    if own:
        return str(own)
    root = values.get("results_dir") or raw.get("results_dir")
    if action == "init-checkpoint" and not root:
        out = values.get("output") or raw.get("output")
        return str(Path(str(out)).parent / action) if out else "(output's folder)"
    if action in ("validate",):
        return "(none: validate writes nothing)"
    if not root:
        return "(not set)"
    return str(root if action in ("convert", "flow") else Path(str(root)) / action)  # flow: <root>/<step>


def progress(items: Iterable[T], *, total: int | None, desc: str, unit: str = "img") -> Iterator[T]:
    """`items` with a tqdm bar on stdout (count/total, rate, ETA); plain `items` when disabled."""
    if os.environ.get(PROGRESS_ENV, "1") == "0":
        yield from items
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit=unit, file=sys.stdout, mininterval=1.0, dynamic_ncols=True,
              leave=True) as bar:
        for item in items:
            yield item
            bar.update(1)


def note(message: str) -> None:
    """One progress line on stdout for a long single step (tracing, the ONNX Runtime check, an engine build)."""
    if os.environ.get(PROGRESS_ENV, "1") != "0":
        print(message, file=sys.stdout, flush=True)


class ProgressBar:
    """A bar advanced by hand (`update(n)`), for loops that yield groups of images."""

    def __init__(self, *, total: int | None, desc: str, unit: str = "img"):
        self._bar = None
        if os.environ.get(PROGRESS_ENV, "1") != "0":
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stdout, mininterval=1.0,
                             dynamic_ncols=True, leave=True)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
