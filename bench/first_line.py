"""Time to the first console line and to the first evaluated sample of `depth_net evaluate`, before and after.

    .venv/bin/python bench/first_line.py                         # before = commit 2ff0457, after = this tree
    .venv/bin/python bench/first_line.py --before main --model ffs_bp2 --repeats 5

"Before" is checked out into a temporary git worktree (removed afterwards); both trees run the very same
spec, data and checkpoint with the same interpreter, alternating, each in a fresh process and results
folder (so both pay MLflow's store creation). Measured from process start (Popen) by the parent:

* first line — the first line on stdout *or* stderr, whatever it says;
* first sample — the moment the evaluate loop yields its first scored sample. A meta-path hook in the
  child wraps `stereo.training.inference_loop.samples` (the loop both trees use) to write a marker to
  stderr; nothing else in the child is changed;
* total — the process's exit.

Prints a markdown table (medians over --repeats) with the date and machine.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARKER = "@@FIRST_SAMPLE"
DEFAULT_BEFORE = "2ff0457"

# runs in the child: patch the evaluate loop to report its first sample, then run the CLI unchanged
BOOT = r'''
import importlib.abc, importlib.machinery, os, runpy, sys

class _FirstSample(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "stereo.training.inference_loop":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            inner = module.samples

            def samples(*args, **kwargs):
                first = True
                for item in inner(*args, **kwargs):
                    if first:
                        os.write(2, b"%s\n")
                        first = False
                    yield item
            module.samples = samples
        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, _FirstSample())
sys.argv = ["depth_net"] + sys.argv[1:]
runpy.run_module("stereo.cli", run_name="__main__")
''' % MARKER


def _prepare(work: Path, model: str, n: int) -> Path:
    """Data, a checkpoint of `model` (random weights) and an evaluate spec; returns the spec path."""
    import dataclasses

    import torch
    import yaml

    from stereo.data.synthetic import generate
    from stereo.models import create_model, preset_config
    from stereo.checkpoints import save_checkpoint

    ann = generate(work / "data", "fsd", n=n, height=128, width=256, max_disparity=24, seed=0)
    torch.manual_seed(0)
    cfg = preset_config(model)
    ckpt = save_checkpoint(work / "ckpt", create_model(model).state_dict(), config=dataclasses.asdict(cfg))
    split = {"data_sources": [{"dataset_name": "FSD", "data_file": str(ann)}], "batch_size": 1, "workers": 0}
    spec = {"results_dir": str(work / "results"), "model": dataclasses.asdict(cfg),
            "dataset": {"max_disparity": cfg.max_disparity, "test_dataset": split},
            "evaluate": {"checkpoint": str(ckpt)}}
    path = work / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _timed_run(tree: Path, spec: Path, results: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = str(tree)
    argv = [sys.executable, "-c", BOOT, "evaluate", "-e", str(spec), f"results_dir={results}"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: dict[str, float] = {}
    first_text: list[str] = []

    def read(stream):
        for line in stream:
            now = time.perf_counter() - t0
            if line.startswith(MARKER):
                seen.setdefault("first_sample", now)
                continue
            if "first_line" not in seen:
                seen["first_line"] = now
                first_text.append(line.strip())

    threads = [threading.Thread(target=read, args=(s,)) for s in (proc.stdout, proc.stderr)]
    for t in threads:
        t.start()
    code = proc.wait()
    total = time.perf_counter() - t0
    for t in threads:
        t.join()
    if code != 0:
        raise RuntimeError(f"evaluate in {tree} exited {code}")
    return {"first_line": seen.get("first_line", total), "first_sample": seen.get("first_sample", total),
            "total": total, "text": first_text[0] if first_text else ""}


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} CPU {cpu}, Python {platform.python_version()}, load average {load:.1f} at start"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=DEFAULT_BEFORE, help="git revision of the 'before' tree")
    parser.add_argument("--model", default="ffs_tiny", help="model preset (random weights)")
    parser.add_argument("--images", type=int, default=4, help="test images (128x256)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="first_line_") as tmp:
        work = Path(tmp)
        before = work / "before"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(before), args.before],
                       check=True, capture_output=True)
        try:
            spec = _prepare(work, args.model, args.images)
            runs: dict[str, list[dict]] = {"before": [], "after": []}
            for i in range(args.repeats):  # alternate, so load changes hit both alike
                for name, tree in (("before", before), ("after", REPO)):
                    runs[name].append(_timed_run(tree, spec, work / f"results_{name}_{i}"))
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(before)],
                           capture_output=True)

    print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {_machine()}")
    print(f"depth_net evaluate, {args.model} (random weights), {args.images} images 128x256, "
          f"median of {args.repeats}; before = {args.before}, after = {REPO.name}\n")
    print("| tree | first line (s) | first sample (s) | total (s) | first line printed |")
    print("|---|---:|---:|---:|---|")
    for name, rows in runs.items():
        med = {k: statistics.median(r[k] for r in rows) for k in ("first_line", "first_sample", "total")}
        text = rows[-1]["text"][:70].replace("|", "/")
        print(f"| {name} | {med['first_line']:.2f} | {med['first_sample']:.2f} | {med['total']:.2f} | `{text}` |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
