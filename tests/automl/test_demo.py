"""automl.demo: data + spec preparation (deterministic, reused, timestamped sweeps); no sweep is run."""
from __future__ import annotations

import numpy as np

from automl.demo import DATA, DemoPlan, load_demo_spec, main, prepare, sweep_argv
from stereo.data.formats.images import read_image


def test_prepare_generates_data_once_and_reuses_it(tmp_path):
    first = prepare(tmp_path, stamp="A")
    assert not first.data_reused
    lines = first.train_annotations.read_text().splitlines()
    assert len(lines) == DATA["train"]["n"]
    assert len(first.val_annotations.read_text().splitlines()) == DATA["val"]["n"]
    left = first.train_annotations.parent / lines[0].split()[0]
    before = left.stat().st_mtime_ns
    second = prepare(tmp_path, stamp="B")
    assert second.data_reused and left.stat().st_mtime_ns == before  # same files, not rewritten
    assert first.sweep_dir != second.sweep_dir and first.results_dir == second.results_dir


def test_data_is_deterministic(tmp_path):
    a, b = prepare(tmp_path / "a", stamp="x"), prepare(tmp_path / "b", stamp="x")
    rel = a.train_annotations.read_text().splitlines()[3].split()[0]
    assert np.array_equal(read_image(a.train_annotations.parent / rel),
                          read_image(b.train_annotations.parent / rel))


def test_torn_data_is_regenerated(tmp_path):
    plan = prepare(tmp_path, stamp="A")
    (plan.root / "data" / "demo_data.json").write_text("{trunc")
    assert not prepare(tmp_path, stamp="B").data_reused


def test_same_second_gets_a_distinct_sweep_folder(tmp_path):
    plan = prepare(tmp_path, stamp="S")
    plan.sweep_dir.mkdir(parents=True)
    assert prepare(tmp_path, stamp="S").sweep_dir.name == "sweep_S_1"


def test_demo_spec_loads_for_training(tmp_path):
    plan: DemoPlan = prepare(tmp_path, stamp="A")
    spec = load_demo_spec(plan)
    assert spec.results_dir == str(plan.sweep_dir)
    assert spec.dataset.train_dataset.data_sources[0].data_file == str(plan.train_annotations)
    assert spec.train.num_epochs == 4 and spec.train.max_steps == 32
    args = sweep_argv(plan, 8, 2)
    assert args[:5] == ["run", "--skill", "tiny-demo", "--policy", "auto"]
    assert args[args.index("--num-samples") + 1] == "8" and args[args.index("--max-concurrent") + 1] == "2"
    assert args[args.index("--output") + 1] == str(plan.sweep_dir)
    assert not any(a.startswith("results_dir=") for a in args)  # the sweep sets each trial's results_dir


def test_prepare_only_cli(tmp_path, capsys):
    assert main(["--root", str(tmp_path), "--prepare-only"]) == 0
    out = capsys.readouterr().out
    assert "generated" in out and "Sweep folder:" in out and "data_file=" in out
    assert main(["--root", str(tmp_path), "--trials", "0"]) == 2


def test_demo_pareto_plans_a_deploy_only_grid(tmp_path):
    """`make demo-pareto`'s `automl run` arguments make a deploy-only sweep of every valid_iters x scale point
    (the sweep itself is tests/automl/e2e/test_deploy_only_sweep.py's)."""
    from automl.cli import build_parser, plan_from_args
    from automl.demo import PARETO_SPACE, pareto_argv
    from automl.space.grid import grid_points
    from stereo.actions.init_checkpoint import init_checkpoint
    from stereo.config.init_checkpoint import InitCheckpointConfig

    plan = prepare(tmp_path, stamp="P")
    ckpt = tmp_path / "tiny.pth"  # the demo network's structure, random weights
    init_checkpoint(InitCheckpointConfig(output=str(ckpt), preset="ffs_tiny"), tracker=False)
    space = tmp_path / "space.yaml"
    space.write_text(PARETO_SPACE)
    launch = plan_from_args(build_parser().parse_args(pareto_argv(plan, ckpt, space)))
    assert launch.stage == "deploy" and launch.algorithm == "grid" and launch.run_dir == str(plan.sweep_dir)
    points, _ = grid_points(launch.search_space(), launch.grid_points)
    assert sorted((p["deploy.valid_iters"], p["deploy.scale"]) for p in points) == [
        (i, s) for i in (1, 2, 4) for s in (0.5, 1.0)]
    assert launch.objectives == [["deploy/epe", "min"], ["deploy/latency_ms", "min"]]
