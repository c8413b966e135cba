"""`--score-on deploy` / `--then deploy` at launch (automl/plan/deploy_step.py): the user's `automl run --dry-run`
shows the deploy step and its cost; every bad combination is one line and exit 2, before anything runs."""
import pytest

from automl.cli import main
from automl.plan.deploy_step import DEPLOY_FIXED_S, DeployConfig, deploy_cost, train_monitor
from automl.errors import LaunchError
from automl.tune.deploy_score import best_row_index
from automl.tune.ledger import best_key, metric_value


@pytest.fixture(scope="module")
def data(tmp_path_factory, sweep_overrides):
    return sweep_overrides(tmp_path_factory.mktemp("deploy-plan"), n_val=2)


def _run(capsys, tmp_path, data, *flags):
    code = main(["run", "--skill", "tiny-demo", "--output", str(tmp_path / "run"), "--no-probe", "--dry-run",
                 *flags, *data])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_review_shows_the_deploy_step_its_shape_runtime_and_cost(capsys, tmp_path, data):
    code, out, _ = _run(capsys, tmp_path, data, "--score-on", "deploy", "--then", "deploy")
    assert code == 0, out
    deploy = [line for line in out.splitlines() if line.startswith("  deploy ")]
    assert deploy and "ONNX 32x64, batch 1, static (first validation image 32x64 rounded up" in deploy[0]
    assert "onnxruntime on cpu" in deploy[0] and "kept by val/epe" in deploy[0]
    assert "CPU trials: the ONNX runs with ONNX Runtime on the CPU" in out
    assert "3 warm-up then the median of 20 single-image calls, 1 thread(s)" in out
    assert f"cost: about {DEPLOY_FIXED_S:g} s per trial ({DEPLOY_FIXED_S:g} s fixed (benchmark constant" in out
    assert "then deploy: the best trial's checkpoint goes through depth_net flow" in out


def test_a_deploy_metric_with_the_default_scheduler_runs_none_and_says_why(capsys, tmp_path, data):
    code, out, _ = _run(capsys, tmp_path, data, "--metric", "deploy/latency_ms", "--score-on", "deploy")
    assert code == 0, out
    assert "--scheduler auto: none, as deploy/latency_ms exists only at a trial's end" in out
    assert "objective    deploy/latency_ms (min), measured once per trial, on its deployed model" in out


def test_the_export_keys_set_the_deploy_shape(capsys, tmp_path, data):
    code, out, _ = _run(capsys, tmp_path, data, "--score-on", "deploy", "export.input_height=64",
                        "export.input_width=96")
    assert code == 0 and "ONNX 64x96, batch 1, static (export.input_height/input_width)" in out, out


@pytest.mark.parametrize("flags, message", [
    (["--metric", "deploy/epe"], "--metric deploy/epe is measured on the deployed model: add --score-on deploy"),
    (["--metric", "deploy/epe", "--score-on", "deploy", "--scheduler", "asha"],
     "--metric deploy/epe with --scheduler asha: the scheduler ranks trials at every validation, but deploy metrics "
     "exist only at a trial's end; use --scheduler none"),
    (["--metric", "deploy/fps", "--score-on", "deploy", "--scheduler", "none"],
     "--metric deploy/fps: not a deploy metric; use one of deploy/epe, deploy/latency_ms, deploy/peak_mem_mb, "
     "deploy/drift_px"),
    (["--policy", "off", "--then", "deploy"], "--then deploy hands a sweep's best trial to `depth_net flow`, and this "
                                              "run is one plain training"),
    (["--policy", "off", "--score-on", "deploy"], "--score-on deploy scores the trials of a sweep, and this run is one "
                                                  "plain training"),
    (["--score-on", "deploy", "export.input_height=100", "export.input_width=64"], "export.input_height"),
])
def test_bad_combinations_are_one_line_and_exit_2(capsys, tmp_path, data, flags, message):
    code, out, err = _run(capsys, tmp_path, data, *flags)
    assert code == 2, (out, err)
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run" / "launch.json").exists()


def test_a_model_that_cannot_be_run_deployed_is_refused_without_onnx_runtime(capsys, tmp_path, data, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    code, _, err = _run(capsys, tmp_path, data, "--score-on", "deploy")
    assert code == 2 and "need ONNX Runtime: pip install onnxruntime" in err, err


def test_resume_keeps_the_saved_deploy_choice(capsys, tmp_path):
    code = main(["run", "--resume", str(tmp_path), "--score-on", "deploy"])
    assert code == 2 and "the saved launch.json decides score_on" in capsys.readouterr().err


def test_bad_flag_values_are_refused():
    with pytest.raises(LaunchError, match="--score-on 'onnx' is not one of train, deploy"):
        DeployConfig(score_on="onnx")


def test_the_trial_keeps_its_checkpoint_by_a_validation_metric():
    assert train_monitor("deploy/epe", "min") == ("val/epe", "min")
    assert train_monitor("deploy/latency_ms", "min") == ("val/epe", "min")
    assert train_monitor("val/bp3", "max") == ("val/bp3", "max")


def test_a_deploy_metric_is_never_read_from_its_validation_namesake():
    row = {"val/epe": 1.0}
    assert metric_value(row, "deploy/epe") is None and metric_value({**row, "deploy/epe": 2.0}, "deploy/epe") == 2.0
    assert best_key("deploy/latency_ms") == "best/deploy/latency_ms" and best_key("epe") == "best/val/epe"


def test_the_deploy_row_is_the_kept_checkpoints_validation_first_on_a_tie():
    rows = [{"val/epe": 3.0}, {"val/epe": 2.0}, {"val/epe": 2.0}, {"val/epe": float("nan")}]
    assert best_row_index(rows, "val/epe", "min") == 1
    assert best_row_index(rows, "val/epe", "max") == 0
    assert best_row_index([{"val/bp1": 1.0}], "val/epe", "min") is None


def test_the_cost_uses_the_probe_when_there_is_one():
    class Plan:
        deploy = {"warmup": 3, "repeats": 20}
        trial_shape = {"val_samples": 4}
        probe = {"val_seconds_per_batch": 0.5}

    seconds, how = deploy_cost(Plan())
    assert seconds == pytest.approx(DEPLOY_FIXED_S + (2 * 4 + 23) * 0.5) and "31 forward passes x 0.500 s" in how


def test_then_deploy_alone_checks_the_deploy_shape_but_scores_trials_by_training(capsys, tmp_path, data):
    code, out, _ = _run(capsys, tmp_path, data, "--then", "deploy")
    assert code == 0, out
    assert "then deploy: the best trial's checkpoint goes through depth_net flow" in out
    assert "score-on deploy:" not in out and "objective    val/epe (min), the best validation" in out
