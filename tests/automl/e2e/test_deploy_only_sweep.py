"""Done-when of issue 13 §4, as a user runs it: `depth_net init-checkpoint` writes a tiny checkpoint, then
`automl run --stage deploy --checkpoint CKPT --search-space deploy.yaml` sweeps three deploy knobs
(deploy.valid_iters x deploy.scale x deploy.precision, int8 included) with no training, through real Ray Tune +
Optuna (multi-objective TPE), ONNX Runtime and MLflow.

Every record is read back: the ledger, the exported graphs (their shape and iterations are the trial's knobs),
the absence of any training folder, and the Pareto front of deploy/epe x deploy/latency_ms in the console,
leaderboard.txt, results.json, pareto.json, plots/pareto.png and the MLflow store. One module-scoped sweep
(3 trials on 1 validation pair at 32x64) feeds every assertion.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from automl.plan.deploy_space import deploy_hw
from automl.tune.ledger import Ledger

DEPLOY = ("deploy/epe", "deploy/latency_ms", "deploy/peak_mem_mb", "deploy/drift_px")
SPACE = """\
description: three deploy knobs of one checkpoint, test-sized
metric: deploy/epe
mode: min
parameters:
  deploy.valid_iters: {distribution: categorical, choices: [1, 2]}
  deploy.scale: {distribution: categorical, choices: [1.0, 2.0]}
  deploy.precision: {distribution: categorical, choices: [fp32, int8]}
"""


def _cli(spawn_module, module, args, env):
    proc = spawn_module([sys.executable, "-m", module, *args], env=env, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-4000:] + err[-3000:]
    return out


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, spawn_module, ray_tmpdir):
    from stereo.data.synthetic import generate
    from stereo.tracking import MlflowTracker, default_tracking_uri

    root = tmp_path_factory.mktemp("deploy-only")
    val = generate(root / "data" / "val", "fsd", n=1, height=32, width=64, max_disparity=24, seed=1)
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "AUTOML_TRIAL_CALLBACKS")}
    env["RAY_TMPDIR"] = str(ray_tmpdir)
    ckpt = root / "tiny.pth"  # the tiny-demo skill's network is the ffs_tiny preset
    _cli(spawn_module, "stereo.cli", ["init-checkpoint", "preset=ffs_tiny", f"output={ckpt}"], env)
    space = root / "deploy.yaml"
    space.write_text(SPACE)
    run = root / "run"
    out = _cli(spawn_module, "automl.cli", [
        "run", "--skill", "tiny-demo", "--stage", "deploy", "--checkpoint", str(ckpt), "--search-space", str(space),
        "--output", str(run), "--num-samples", "3", "--max-concurrent", "2", "--seed", "1",
        f"dataset.val_dataset.data_sources[0].data_file={val}", "dataset.val_dataset.data_sources[0].dataset_name=FSD"],
        env)
    tracker = MlflowTracker(default_tracking_uri(run))
    runs = tracker.find_runs("depth_net")
    parent = next(r for r in runs if r.tags.get("automl.kind") == "sweep")
    return {"run": run, "out": out, "ckpt": ckpt, "ledger": Ledger(run, metric="deploy/epe"), "parent": parent,
            "trials": {r.tags["automl.trial_id"]: r for r in runs if r.parent_run_id == parent.run_id},
            "results": json.loads((run / "results.json").read_text())}


def test_each_trial_deploys_its_knobs_and_nothing_trains(sweep):
    trials = sweep["ledger"].trials()
    assert len(trials) == 3 and {t["status"] for t in trials} == {"completed"}, trials
    assert not list(sweep["run"].rglob("train")) and not list(sweep["run"].rglob("*.ckpt"))
    for t in trials:
        params, m = t["params"], t["metrics"]
        assert set(params) == {"deploy.valid_iters", "deploy.scale", "deploy.precision"}
        assert set(DEPLOY) <= set(m) and m["deploy/latency_ms"] > 0 and m["deploy/epe"] >= 0
        folder = sweep["run"] / "trials" / t["trial_id"]
        assert sorted(p.name for p in folder.iterdir()) == ["evaluate", "export"]
        sidecar = json.loads((folder / "export" / "model.onnx.json").read_text())
        h, w = deploy_hw(params["deploy.scale"], (32, 64))
        assert sidecar["valid_iters"] == params["deploy.valid_iters"] and sidecar["traced_shape"] == [1, 3, h, w]
        from stereo.deploy.quantize import input_hw

        deployed = folder / "export" / ("model_int8.onnx" if params["deploy.precision"] == "int8" else "model.onnx")
        assert deployed.is_file() and tuple(input_hw(str(deployed))) == (h, w)
        evaluated = json.loads((folder / "evaluate" / "results.json").read_text())
        assert evaluated["per_image_mean"]["epe"] == pytest.approx(m["deploy/epe"])
        assert evaluated["drift"]["drift_mean_abs"] == pytest.approx(m["deploy/drift_px"])
        if params["deploy.precision"] == "fp32":  # the fp32 graph runs like PyTorch at the same iterations
            assert m["deploy/drift_px"] < 1e-3


def test_the_front_agrees_across_console_leaderboard_results_and_mlflow(sweep):
    results, run = sweep["results"], sweep["run"]
    front = [p["trial_id"] for p in results["pareto"]]
    assert front and results["best"]["trial_id"] == front[0]
    assert [o["name"] for o in results["objectives"]] == ["deploy/epe", "deploy/latency_ms"]
    board = (run / "leaderboard.txt").read_text()
    assert board in sweep["out"]
    best = sweep["results"]["best"]["trial_id"]
    graph = next(line for line in sweep["out"].splitlines() if line.startswith("best graph:"))
    assert f"/trials/{best}/export/model" in graph, graph  # nothing was trained: no best spec or checkpoint
    assert "best checkpoint:" not in sweep["out"]
    assert f"Pareto front (deploy/epe:min, deploy/latency_ms:min): {', '.join(front)}" in board
    starred = [line.split()[1] for line in board.splitlines() if line[:1].isdigit() and line.split()[4] == "*"]
    assert starred == front
    assert json.loads((run / "pareto.json").read_text())["pareto"] == results["pareto"]
    assert (run / "plots" / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ledger = {t["trial_id"]: t["metrics"] for t in sweep["ledger"].trials()}
    for p in results["pareto"]:
        for key, value in p["values"].items():
            assert value == pytest.approx(ledger[p["trial_id"]][key])
    trials = sweep["trials"]
    assert set(trials) == set(ledger)
    assert {tid for tid, r in trials.items() if r.tags.get("automl.pareto") == "true"} == set(front)
    assert set(json.loads(sweep["parent"].tags["automl.pareto_front"])) == set(front)
    for tid, r in trials.items():
        assert r.status == "FINISHED" and r.tags["automl.stage"] == "deploy"
        for key in DEPLOY:
            assert r.metrics[key] == pytest.approx(ledger[tid][key])
        assert r.params["deploy.runtime"] == "onnxruntime"
        assert r.params["deploy.checkpoint"] == str(Path(sweep["ckpt"]).resolve())
