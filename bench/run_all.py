"""Run every benchmark script in bench/ one after the other and print their markdown tables.

Numbers belong in docs/BENCHMARKS.md with the date and machine; machines are noisy, so each script
reports medians and ratios measured side by side in one run.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path


def main() -> int:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)])
                   if m.name not in {"run_all", "__init__"} and not m.name.startswith("_"))
    failed = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        if not hasattr(module, "main"):
            continue
        print(f"\n## bench/{name}.py", flush=True)
        start = time.perf_counter()
        try:
            module.main([])
        except Exception as exc:  # report and continue with the next benchmark
            failed.append(name)
            print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"({time.perf_counter() - start:.0f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
