"""The memory/time probe's own cost (automl/plan/probe.py): a fresh probe process per spec shape, then the
cached lookup a second sweep of the same shape pays.

    python -m bench.probe_cost --repeats 3 --out /tmp/sa-probe

Shapes: the tests' tiny trial (crop 32x64, one GRU iteration) and `make demo`'s (crop 64x128, the
tiny-demo template), on the CPU with one thread (what a CPU trial gets). Prints a markdown table:
median wall of an uncached probe (process start, imports, model build, 2 training steps, one
validation forward), the probe's own split of it, and the cached lookup.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path


def _overrides(root: Path, crop: tuple, tiny: bool) -> list:
    from stereo.data.synthetic import generate

    h, w = crop
    tr = generate(root / "train", "fsd", n=4, height=h, width=w, max_disparity=24, seed=0)
    va = generate(root / "val", "fsd", n=1, height=h, width=w, max_disparity=24, seed=1)
    out = [f"dataset.train_dataset.data_sources[0].data_file={tr}",
           "dataset.train_dataset.data_sources[0].dataset_name=FSD",
           f"dataset.val_dataset.data_sources[0].data_file={va}",
           "dataset.val_dataset.data_sources[0].dataset_name=FSD",
           f"dataset.train_dataset.augmentation.crop_size=[{h},{w}]"]
    return out + (["model.train_iters=1", "model.valid_iters=1"] if tiny else [])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="/tmp/sa-probe")
    args = parser.parse_args(argv)
    root = Path(args.out)
    shutil.rmtree(root, ignore_errors=True)

    from automl.plan.configs import RunConfig, SearchConfig

    from automl.plan.launch import build_plan
    from automl.plan.probe import run_probe

    print("| shape | uncached probe, wall (median of %d) | of which 2 steps + val forward | model build | "
          "cached lookup | peak RSS | s/step |" % args.repeats)
    print("|---|---|---|---|---|---|---|")
    for name, crop, tiny in (("tests' tiny trial", (32, 64), True), ("make demo", (64, 128), False)):
        where = root / name.replace(" ", "_")
        plan = build_plan(SearchConfig(skill="tiny-demo", overrides=_overrides(where, crop, tiny)),
                          where=RunConfig(output=str(where / "run")), gpus_available=0)
        raw = {**plan.base_spec, "results_dir": plan.run_dir}
        walls, results = [], []
        for i in range(args.repeats):
            cache = root / "cache" / f"{name}-{i}"
            start = time.perf_counter()
            results.append(run_probe(raw, device="cpu", threads=1, cache=cache))
            walls.append(time.perf_counter() - start)
            assert "error" not in results[-1], results[-1]
        start = time.perf_counter()
        hit = run_probe(raw, device="cpu", threads=1, cache=root / "cache" / f"{name}-0")
        cached = time.perf_counter() - start
        assert hit.get("cached"), hit
        r = results[0]
        work = statistics.median(x["first_step_seconds"] + x["seconds_per_step"] + x["val_seconds_per_batch"]
                                 for x in results)
        print(f"| {name} (crop {crop[0]}x{crop[1]}, batch {r['batch']}) | {statistics.median(walls):.1f} s | "
              f"{work:.1f} s | {statistics.median(x['setup_seconds'] for x in results):.2f} s | "
              f"{cached * 1000:.0f} ms | {r['peak_host_bytes'] / 2 ** 30:.2f} GB | "
              f"{statistics.median(x['seconds_per_step'] for x in results):.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
