"""Done-when of issue 13 §3 and §1's hand-over: the user's `automl run --score-on deploy --metric deploy/epe
--scheduler none --then deploy` on tiny-demo (2 trials, tiny data, CPU: ONNX Runtime), then every record read
back: the console leaderboard, the ledger, results.json, each trial's MLflow run and files, and the hand-over's
`depth_net flow` run nested under the sweep's parent in the same store.

One module-scoped sweep (one Ray start) feeds every assertion.
"""
import json
import os
import subprocess
import sys

import pytest

from automl.tune.ledger import Ledger

DEPLOY = ("deploy/epe", "deploy/latency_ms", "deploy/peak_mem_mb", "deploy/drift_px")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, sweep_overrides, ray_tmpdir):
    from stereo.tracking import MlflowTracker, default_tracking_uri

    root = tmp_path_factory.mktemp("score-on-deploy")
    run = root / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "AUTOML_TRIAL_CALLBACKS",
                                                            "STEREO_FLOW_RUN_ID")}
    env["RAY_TMPDIR"] = str(ray_tmpdir)
    out = subprocess.run(
        [sys.executable, "-m", "automl.cli", "run", "--skill", "tiny-demo", "--output", str(run), "--num-samples",
         "2", "--max-concurrent", "2", "--scheduler", "none", "--score-on", "deploy", "--metric", "deploy/epe",
         "--then", "deploy", "--no-probe", *sweep_overrides(root, n_val=2)],
        env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    tracker = MlflowTracker(default_tracking_uri(run))
    runs = tracker.find_runs("depth_net")
    parent = next(r for r in runs if r.tags.get("automl.kind") == "sweep")
    return {"run": run, "out": out.stdout, "ledger": Ledger(run, metric="deploy/epe"), "tracker": tracker,
            "runs": runs, "parent": parent,
            "trials": {r.tags["automl.trial_id"]: r for r in runs if r.parent_run_id == parent.run_id
                       and r.tags.get("automl.kind") != "then_deploy"},
            "results": json.loads((run / "results.json").read_text())}


def test_every_trial_is_scored_on_its_deployed_model(sweep):
    trials = sweep["ledger"].trials()
    assert len(trials) == 2 and {t["status"] for t in trials} == {"completed"}
    for t in trials:
        assert set(DEPLOY) <= set(t["metrics"]), t["metrics"]
        m = t["metrics"]
        assert t["metric"] == m["deploy/epe"]
        # the ONNX at the validation images' own size scores like PyTorch: the same EPE, drift ~1e-6 px
        assert m["deploy/epe"] == pytest.approx(m["val/epe"], abs=1e-3) and 0 <= m["deploy/drift_px"] < 1e-3
        assert m["deploy/latency_ms"] > 0 and m["deploy/peak_mem_mb"] >= 0
        folder = sweep["run"] / "trials" / t["trial_id"]
        evaluated = json.loads((folder / "evaluate" / "results.json").read_text())
        assert evaluated["per_image_mean"]["epe"] == pytest.approx(m["deploy/epe"])
        assert evaluated["drift"]["drift_mean_abs"] == pytest.approx(m["deploy/drift_px"])
        assert (folder / "export" / "model.onnx").is_file()
        assert not (folder / "mlflow.db").exists()  # the deploy steps open no store of their own


def test_console_leaderboard_results_json_and_mlflow_agree(sweep):
    board = {line.split()[1]: line.split() for line in sweep["out"].splitlines()
             if line.split()[:1] in (["1"], ["2"]) and len(line.split()) > 3}
    assert "deploy/epe (min)" in sweep["out"]
    history = {h["trial_id"]: h for h in sweep["results"]["history"]}
    for t in sweep["ledger"].trials():
        tid, run = t["trial_id"], sweep["trials"][t["trial_id"]]
        m = t["metrics"]
        assert float(board[tid][3]) == pytest.approx(m["deploy/epe"], rel=1e-3)
        line = next(ln for ln in sweep["out"].splitlines() if ln.startswith(f"trial {tid} completed: deploy/epe="))
        for key in ("deploy/drift_px", "deploy/latency_ms", "deploy/peak_mem_mb"):  # the console's trial line
            assert float(line.split(f"{key}=")[1].split(",")[0].split()[0]) == pytest.approx(m[key], rel=1e-3)
        assert history[tid]["metric"] == pytest.approx(m["deploy/epe"])
        assert history[tid]["deploy"] == pytest.approx({k: m[k] for k in DEPLOY})
        for key in DEPLOY:
            assert run.metrics[key] == pytest.approx(m[key]), (tid, key)
        assert run.metrics["best/deploy/epe"] == pytest.approx(m["deploy/epe"])
        assert run.params["deploy.runtime"] == "onnxruntime" and run.params["deploy.device"].startswith("cpu (")
        assert run.params["deploy.shape"] == "1x3x32x64" and run.params["deploy.threads"] == "1"
        assert run.params["deploy.latency"] == "3 warm-up, median of 20 single-image calls"
    best = sweep["results"]["best"]
    assert best["metric"] == pytest.approx(min(t["metric"] for t in sweep["ledger"].trials()))
    assert sweep["parent"].metrics["best/deploy/epe"] == pytest.approx(best["metric"])
    assert f"Best: {best['trial_id']} with deploy/epe = " in sweep["out"]


def test_then_deploy_ran_the_flow_from_the_best_trial(sweep):
    handed = sweep["results"]["then_deploy"]
    best = sweep["ledger"].trial(sweep["results"]["best"]["trial_id"])
    assert handed["trial_id"] == best["trial_id"] and handed["checkpoint"] == best["checkpoint"]
    assert handed["exit_code"] == 0 and handed["runtime"] == "onnxruntime" and handed["engine"] is None
    sidecar = json.loads(open(handed["onnx"] + ".json").read())
    assert os.path.realpath(sidecar["source_checkpoint"]["path"]) == os.path.realpath(best["checkpoint"])
    # the same checkpoint, data and shape as the trial's own deploy step: the same score
    assert handed["metrics"]["epe"] == pytest.approx(best["metrics"]["deploy/epe"], abs=1e-4)
    assert "then deploy: done; deployed network " + handed["onnx"] in sweep["out"]
    assert "[4/6] gen_trt_engine: no TensorRT or CUDA GPU here, skipped" in sweep["out"]


def test_the_flow_run_nests_under_the_sweep_with_its_steps(sweep):
    handed = sweep["results"]["then_deploy"]
    flow = next(r for r in sweep["runs"] if r.run_id == handed["run_id"])
    assert flow.parent_run_id == sweep["parent"].run_id and flow.status == "FINISHED"
    assert flow.tags["automl.kind"] == "then_deploy" and flow.tags["automl.trial_id"] == handed["trial_id"]
    assert flow.metrics["deploy_epe"] == pytest.approx(handed["metrics"]["epe"])
    assert flow.metrics["drift_mean_abs"] == pytest.approx(handed["metrics"]["drift_mean_abs"])
    steps = sorted(r.name for r in sweep["runs"] if r.parent_run_id == flow.run_id)
    assert steps == ["deploy_evaluate", "deploy_inference", "evaluate", "export", "inference"]
    assert all(r.status == "FINISHED" for r in sweep["runs"] if r.parent_run_id == flow.run_id)


def test_resuming_the_finished_sweep_keeps_the_hand_over(sweep):
    from stereo.tracking import MlflowTracker, default_tracking_uri

    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "STEREO_FLOW_RUN_ID")}
    out = subprocess.run([sys.executable, "-m", "automl.cli", "run", "--resume", str(sweep["run"])], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert f"then deploy: already done for {sweep['results']['then_deploy']['trial_id']}" in out.stdout
    again = json.loads((sweep["run"] / "results.json").read_text())
    assert again["then_deploy"] == sweep["results"]["then_deploy"]
    runs = MlflowTracker(default_tracking_uri(sweep["run"])).find_runs("depth_net")
    assert sum(r.tags.get("automl.kind") == "then_deploy" for r in runs) == 1
