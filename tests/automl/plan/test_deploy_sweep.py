"""`automl run --stage deploy` (automl/plan/deploy_sweep.py): the plan of a deploy-only sweep and its refusals, as
the user meets them: one line on stderr, exit 2, before anything runs (no run folder is written)."""
from __future__ import annotations

import pytest

from automl.cli import main
from automl.plan.deploy_space import deploy_hw
from automl.tune.deploy_trial import trial_deploy
from automl.tune.reporter import TrialFailure


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny-demo checkpoint (the ffs_tiny preset, random weights) and one synthetic validation pair."""
    from stereo.actions.init_checkpoint import init_checkpoint
    from stereo.config.init_checkpoint import InitCheckpointConfig
    from stereo.data.synthetic import generate

    root = tmp_path_factory.mktemp("deploy-plan")
    val = generate(root / "val", "fsd", n=1, height=64, width=128, max_disparity=24, seed=1)
    ckpt = root / "tiny.pth"
    init_checkpoint(InitCheckpointConfig(output=str(ckpt), preset="ffs_tiny"), tracker=False)
    return {"root": root, "ckpt": ckpt, "data": [f"dataset.val_dataset.data_sources[0].data_file={val}",
                                                  "dataset.val_dataset.data_sources[0].dataset_name=FSD"]}


def _refused(capsys, tiny, *args, output=True):
    out = tiny["root"] / "run"
    argv = ["run", "--skill", "tiny-demo", *args, *tiny["data"]] + (["--output", str(out)] if output else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert not out.exists()  # nothing ran, nothing was written
    return err


def test_deploy_stage_needs_a_checkpoint(capsys, tiny):
    assert "add --checkpoint" in _refused(capsys, tiny, "--stage", "deploy")


def test_checkpoint_without_the_deploy_stage_is_refused(capsys, tiny):
    assert "add --stage deploy" in _refused(capsys, tiny, "--checkpoint", str(tiny["ckpt"]))


def test_missing_checkpoint(capsys, tiny):
    err = _refused(capsys, tiny, "--stage", "deploy", "--checkpoint", str(tiny["root"] / "nope.pth"))
    assert "nope.pth: file not found" in err


def test_checkpoint_of_another_model(capsys, tiny):
    import torch

    other = tiny["root"] / "other.pth"
    torch.save({"state_dict": {"head.weight": torch.zeros(3, 3)}}, other)
    err = _refused(capsys, tiny, "--stage", "deploy", "--checkpoint", str(other))
    assert "does not fit the tiny-demo skill's model (FastFoundationStereo)" in err


@pytest.mark.parametrize("option, words", [
    (["--score-on", "train"], "--score-on train"),
    (["--scheduler", "asha"], "--scheduler asha stops trials early"),
    (["--scheduler", "hyperband"], "--scheduler hyperband"),
    (["--then", "deploy"], "--then deploy"),
    (["--objective", "val/epe:min", "--objective", "deploy/latency_ms:min"], "only deploy/* metrics exist"),
])
def test_train_only_options_are_refused(capsys, tiny, option, words):
    assert words in _refused(capsys, tiny, "--stage", "deploy", "--checkpoint", str(tiny["ckpt"]), *option)


def test_the_plan_searches_three_deploy_knobs(tiny):
    from automl.cli import build_parser, plan_from_args

    args = build_parser().parse_args(["run", "--skill", "tiny-demo", "--stage", "deploy", "--checkpoint",
                                      str(tiny["ckpt"]), "--output", str(tiny["root"] / "planned"), *tiny["data"]])
    plan = plan_from_args(args)
    assert plan.stage == "deploy" and plan.sweep and plan.scheduler == "none" and plan.num_samples == 6
    assert plan.objectives == [["deploy/epe", "min"], ["deploy/latency_ms", "min"]]
    params = plan.search_space().to_dict()["parameters"]
    assert params["deploy.valid_iters"]["choices"] == [1, 2, 4, 8]  # the template's valid_iters 2 among them
    assert params["deploy.scale"]["choices"] == [0.5, 0.75, 1.0]
    assert params["deploy.precision"]["choices"] == ["fp32", "int8"]
    assert plan.deploy["checkpoint"] == str(tiny["ckpt"].resolve())
    assert (plan.deploy["val_height"], plan.deploy["val_width"]) == (64, 128)
    assert "train_dataset" not in plan.base_spec["dataset"]  # nothing trains: the template's placeholders go
    assert "train" not in plan.base_spec


def test_resolution_keeps_the_aspect_in_steps_of_32():
    assert deploy_hw(1.0, (64, 128)) == (64, 128)
    assert deploy_hw(0.5, (64, 128)) == (32, 64)
    assert deploy_hw(0.75, (480, 640)) == (352, 480)
    assert deploy_hw(0.1, (64, 128)) == (32, 32)  # never below one 32-px step


def test_trial_knobs_become_the_deploy_step():
    base = {"val_height": 64, "val_width": 128, "model_iters": 2, "runtime": "onnxruntime"}
    step = trial_deploy(base, {"deploy.valid_iters": 4, "deploy.scale": 0.5, "deploy.precision": "int8"})
    assert (step["height"], step["width"], step["valid_iters"], step["precision"]) == (32, 64, 4, "int8")
    assert trial_deploy(base, {})["valid_iters"] == 2
    with pytest.raises(TrialFailure, match="fp16"):
        trial_deploy(base, {"deploy.precision": "fp16"})
