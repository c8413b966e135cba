"""`make demo`: a real AutoML sweep of the tiny-demo network on synthetic stereo data, CPU-sized.

    python -m automl.demo [--root demo_runs] [--trials 8] [--concurrency 2]

1. Synthetic data (exact disparity) under `<root>/data/`, deterministic and reused when present.
2. `automl run --skill tiny-demo --policy auto` with >= 8 trials, 2 at a time, into a new timestamped
   sweep folder under `<root>/results/` (so running the demo twice never overwrites the first one).
3. While it runs, a progress line on each trial event and at least every 30 s (trials done of N, best so
   far, elapsed, ETA); then the leaderboard, where report.html, best_spec.yaml and the best checkpoint
   are, and the command that opens the MLflow UI (spelled so that it works from a `make` checkout).

Budget (2 CPU cores, one torch thread per trial): 16 training pairs at 64x128, batch 2 -> 8 steps an
epoch, 4 epochs = 32 steps (~1.1 s each here) -> ~40 s a trial, ~3 min for 8 trials 2 at a time plus
start-up. Fewer pairs or a smaller crop make every trial score alike (nothing to tune); more blows the
5-minute budget.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

DATA = {"train": {"n": 16, "seed": 0}, "val": {"n": 4, "seed": 1}}
IMAGE = {"height": 64, "width": 128, "max_disparity": 24, "layout": "fsd"}  # GT < 24 px < max_disparity 32
STAMP = "demo_data.json"
SKILL = "tiny-demo"
# epochs are the sweep's rungs (ASHA stops bad trials after 1 or 2); 4 x 8 steps = the template's 32 steps
TRAIN_OVERRIDES = ("train.num_epochs=4", "train.max_steps=32", "train.validation_interval=1",
                   "train.checkpoint_interval=1", "train.seed=0")


@dataclass
class DemoPlan:
    root: Path
    train_annotations: Path
    val_annotations: Path
    results_dir: Path  # holds mlflow.db: one store for every demo sweep
    sweep_dir: Path  # this run's timestamped folder
    overrides: List[str] = field(default_factory=list)
    data_reused: bool = False

    @property
    def ui_command(self) -> str:
        """Works as printed: a `make` checkout has no `automl` on PATH (automl/ui/server.py ui_command)."""
        from automl.ui.server import ui_command

        return ui_command("sqlite:///" + str(self.results_dir / "mlflow.db"))


def prepare_data(data_dir: Path) -> tuple:
    """(train annotations, val annotations, reused?). Regenerates only when the recipe changed."""
    from stereo.data.synthetic import generate

    recipe = {"image": IMAGE, "splits": DATA, "version": 1}
    stamp = data_dir / STAMP
    anns = {split: data_dir / split / f"{IMAGE['layout']}.txt" for split in DATA}
    if stamp.is_file() and all(a.is_file() for a in anns.values()):
        try:
            if json.loads(stamp.read_text()) == recipe:
                return anns["train"], anns["val"], True
        except json.JSONDecodeError:
            pass  # a torn stamp from an interrupted run: regenerate
    for split, cfg in DATA.items():
        generate(data_dir / split, IMAGE["layout"], n=cfg["n"], height=IMAGE["height"], width=IMAGE["width"],
                 max_disparity=IMAGE["max_disparity"], seed=cfg["seed"])
    from stereo.atomic_io import atomic_write_json

    atomic_write_json(stamp, recipe)  # written last: its presence means the data is complete
    return anns["train"], anns["val"], False


def prepare(root: str | Path = "demo_runs", *, stamp: Optional[str] = None) -> DemoPlan:
    """Data + the spec overrides of one demo sweep; nothing is trained here."""
    root = Path(root).resolve()
    train_ann, val_ann, reused = prepare_data(root / "data")
    results = root / "results"
    sweep = results / f"sweep_{stamp or time.strftime('%Y%m%d-%H%M%S')}"
    n = 1
    while sweep.exists():  # two demos started within the same second
        sweep = results / f"sweep_{stamp or time.strftime('%Y%m%d-%H%M%S')}_{n}"
        n += 1
    overrides = [f"results_dir={sweep}"]
    for split, ann in (("train_dataset", train_ann), ("val_dataset", val_ann)):
        overrides += [f"dataset.{split}.data_sources[0].dataset_name=FSD",
                      f"dataset.{split}.data_sources[0].data_file={ann}"]
    return DemoPlan(root, train_ann, val_ann, results, sweep, overrides + list(TRAIN_OVERRIDES), reused)


def load_demo_spec(plan: DemoPlan):
    """The tiny-demo train template with the plan's overrides, validated like `depth_net train -e`."""
    from automl.plan.skills import find_skill
    from stereo.config.load import load_spec

    return load_spec(find_skill(SKILL).load_template("train"), plan.overrides, action="train")


def sweep_argv(plan: DemoPlan, trials: int, concurrency: int) -> List[str]:
    """`automl run` arguments (automl/plan/launch.py build_plan): one MLflow store for every demo sweep."""
    args = ["run", "--skill", SKILL, "--policy", "auto", "--num-samples", str(trials),
            "--max-concurrent", str(concurrency), "--output", str(plan.sweep_dir),
            "--tracking-uri", "sqlite:///" + str(plan.results_dir / "mlflow.db")]
    return args + [o for o in plan.overrides if not o.startswith("results_dir=")]  # trials get their own


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m automl.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="demo_runs", help="data and results folder (default ./demo_runs)")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--prepare-only", action="store_true", help="make the data and print the plan")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.concurrency < 1:
        print("demo: --trials and --concurrency must be >= 1", file=sys.stderr)
        return 2
    start = time.monotonic()
    plan = prepare(args.root)
    print(f"Data: {plan.train_annotations.parent.parent} ({'reused' if plan.data_reused else 'generated'}: "
          f"{DATA['train']['n']} train + {DATA['val']['n']} val pairs, {IMAGE['height']}x{IMAGE['width']})")
    print(f"Sweep folder: {plan.sweep_dir}", flush=True)
    if args.prepare_only:
        load_demo_spec(plan)  # fail here, not halfway through a sweep
        print("Overrides:\n  " + "\n  ".join(plan.overrides))
        return 0
    from automl.cli import main as automl_main

    code = automl_main(sweep_argv(plan, args.trials, args.concurrency))
    how = "finished" if not code else f"stopped (exit code {code}; the leaderboard above says how to resume)"
    print(f"\nDemo {how} after {time.monotonic() - start:.0f} s. Open the MLflow UI with:\n"
          f"  {plan.ui_command}", flush=True)
    for line in sweep_link_lines(plan):
        print(line, flush=True)
    return int(code or 0)


def sweep_link_lines(plan: DemoPlan) -> List[str]:
    """The newest sweep's two UI links (automl/ui/links.py), read back from the demo's store."""
    from automl.ui.links import latest_sweep_links
    from stereo.tracking import MlflowTracker

    try:
        links, _ = latest_sweep_links(MlflowTracker("sqlite:///" + str(plan.results_dir / "mlflow.db")))
    except Exception:  # noqa: BLE001 - no sweep recorded (it failed early): the console above says why
        return []
    lines = [f"then open the trials, ranked, with their sampled values as columns:\n  {links.runs}"]
    if links.compare:
        lines.append(f"and compare the best ones side by side (parallel coordinates):\n  {links.compare}")
    return lines


# `make demo-pareto` (issue 13 §4): the demo network trained once (cached), then a deploy-only sweep of it over
# valid_iters x resolution, fp32, every point (grid), ONNX Runtime latency on this CPU. int8 is left out: its
# calibration costs ~45 s a trial here (more than the rest of a trial), which the 3-minute budget cannot carry.
PARETO_SPACE = """\
description: make demo-pareto - the demo model's deploy table (valid_iters x resolution), fp32
metric: deploy/epe
mode: min
parameters:
  deploy.valid_iters: {distribution: categorical, choices: [1, 2, 4]}
  deploy.scale: {distribution: categorical, choices: [0.5, 1.0]}
  deploy.precision: {distribution: categorical, choices: [fp32]}
"""


def demo_checkpoint(plan: DemoPlan) -> Path:
    """The demo model trained once (16 steps at lr 3e-3: enough that more iterations score better) under
    <root>/checkpoint; reused while the data is."""
    from stereo.actions.train import train
    from stereo.config.load import load_spec

    folder = plan.root / "checkpoint"
    best = folder / "train" / "dn_model_best.safetensors"
    if best.is_file() and plan.data_reused:
        return best
    overrides = [o for o in plan.overrides if not o.startswith("results_dir=")]
    spec = load_spec(find_template(), overrides + [f"results_dir={folder}", "train.optim.lr=3e-3",
                                                     "train.num_epochs=2", "train.max_steps=16"], action="train")
    result = train(spec, tracker=False)
    return Path(result.best_checkpoint)


def find_template():
    from automl.plan.skills import find_skill

    return find_skill(SKILL).load_template("train")


def pareto_argv(plan: DemoPlan, checkpoint: Path, space: Path) -> List[str]:
    """`automl run --stage deploy` over the demo's validation pairs: 6 points, 2 at a time."""
    val = [o for o in plan.overrides if o.startswith("dataset.val_dataset.")]
    return ["run", "--skill", SKILL, "--stage", "deploy", "--checkpoint", str(checkpoint), "--search-space",
            str(space), "--algorithm", "grid", "--max-concurrent", "2", "--output", str(plan.sweep_dir),
            "--tracking-uri", "sqlite:///" + str(plan.results_dir / "mlflow.db"), *val]


def pareto_main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m automl.demo pareto", description="make demo-pareto: a "
                                     "deploy-only sweep of the demo model (valid_iters x resolution, ONNX Runtime)")
    parser.add_argument("--root", default="demo_runs", help="data and results folder (default ./demo_runs)")
    args = parser.parse_args(argv)
    start = time.monotonic()
    plan = prepare(args.root, stamp="pareto_" + time.strftime("%Y%m%d-%H%M%S"))
    print(f"Data: {plan.val_annotations.parent.parent} ({'reused' if plan.data_reused else 'generated'})", flush=True)
    checkpoint = demo_checkpoint(plan)
    print(f"Checkpoint: {checkpoint} ({time.monotonic() - start:.0f} s so far)", flush=True)
    space = plan.root / "deploy_pareto.yaml"
    space.write_text(PARETO_SPACE)
    from automl.cli import main as automl_main

    code = automl_main(pareto_argv(plan, checkpoint, space))
    results = plan.sweep_dir / "results.json"
    if results.is_file():
        front = json.loads(results.read_text()).get("pareto") or []
        print("\nPareto front (deploy/epe vs deploy/latency_ms, ONNX Runtime on this CPU):")
        ledger = {t["trial_id"]: t for t in _ledger_trials(plan.sweep_dir)}
        for p in front:
            knobs = ledger.get(p["trial_id"], {}).get("params", {})
            print(f"  {p['trial_id']}: valid_iters={knobs.get('deploy.valid_iters')} scale={knobs.get('deploy.scale')}"
                  f" -> epe {p['values']['deploy/epe']:.3f} px, {p['values']['deploy/latency_ms']:.1f} ms")
        print(f"Pareto plot: {plan.sweep_dir / 'plots' / 'pareto.png'}")
    print(f"Demo-pareto {'finished' if not code else f'stopped (exit code {code})'} after "
          f"{time.monotonic() - start:.0f} s. MLflow UI:\n  {plan.ui_command}", flush=True)
    return int(code or 0)


def _ledger_trials(run_dir: Path) -> list:
    from automl.tune.ledger import Ledger

    return Ledger(run_dir, metric="deploy/epe").trials()


if __name__ == "__main__":
    sys.exit(pareto_main(sys.argv[2:]) if sys.argv[1:2] == ["pareto"] else main())
