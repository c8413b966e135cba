"""`automl run ... --then deploy`: the sweep's best trial handed to `depth_net flow` (issue 13 §1).

After the report is written, :func:`then_deploy` runs the flow's deploy-only six steps (evaluate, inference,
export, gen_trt_engine, deploy inference, deploy evaluate; stereo/actions/chain.py) on the best trial's own
checkpoint, each step the ordinary `depth_net` action run in this process (the CLI's main), in
``<output>/then_deploy/``:

* ``spec.yaml``: the best trial's spec (``trials/<id>/train/experiment.yaml``) with ``dataset.test_dataset`` and
  ``dataset.infer_dataset`` set to its validation set where it names none, and the export at the deploy shape
  (automl/plan/deploy_step.py: batch 1, static); ``flow.yaml``: ``checkpoint`` = the best trial's checkpoint;
* MLflow: one run ``then deploy <trial>`` **nested under the sweep's parent run** (tags ``stereo.kind=flow``,
  ``automl.kind=then_deploy``, ``automl.trial_id``), in the sweep's store; every step's run nests under it
  (``$STEREO_FLOW_RUN_ID``), and the flow logs the deploy evaluate's ``drift_*`` and ``deploy_epe`` on it;
* ``results.json`` gains ``then_deploy`` (trial, checkpoint, folder, run id, exit code, the ONNX and engine files,
  the deploy metrics), and the console says where they are.

Without TensorRT and a CUDA GPU the flow skips gen_trt_engine and runs the ONNX with ONNX Runtime (one line).
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Callable, Dict, Mapping

FOLDER = "then_deploy"
RECORD = "handoff.json"  # in FOLDER: what results.json's then_deploy says, kept for a resumed sweep


def _spec(best_spec: Mapping[str, Any], deploy: Mapping[str, Any]) -> Dict[str, Any]:
    spec = copy.deepcopy(dict(best_spec))
    data = spec.setdefault("dataset", {})
    val = data.get("val_dataset")
    for split in ("test_dataset", "infer_dataset"):
        if val and not ((data.get(split) or {}).get("data_sources")):
            data[split] = copy.deepcopy(val)
    export = {**(spec.get("export") or {}), "onnx_file": "model.onnx", "batch_size": 1, "dynamic_hw": False,
              "overwrite": True, "input_height": int(deploy["height"]), "input_width": int(deploy["width"])}
    if deploy.get("device") == "cpu":
        export["on_cpu"] = True
    spec["export"] = export
    for section in ("evaluate", "inference"):  # the flow feeds their files; a trial's paths would contradict it
        spec[section] = {k: v for k, v in (spec.get(section) or {}).items() if k not in ("checkpoint", "trt_engine")}
    return spec


def _kpi(folder: Path) -> Dict[str, float]:
    from stereo.actions.status import read_status

    try:
        kpi = read_status(folder / "deploy_evaluate")[-1].get("kpi") or {}
    except (OSError, IndexError, ValueError):
        return {}
    keep = ("epe", "bp3", "d1", "drift_mean_abs", "drift_max_abs", "drift_cosine", "pyt_epe")
    return {k: float(kpi[k]) for k in keep if k in kpi}


def then_deploy(plan: Any, best: Mapping[str, Any], best_spec: Mapping[str, Any], tracker: Any, parent_run_id: str,
                printer: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run the deploy-only flow on `best` (a ledger trial); returns the record results.json keeps."""
    import yaml

    from automl.plan.deploy_step import deploy_shape
    from stereo.actions.chain import engine_available, run_flow
    from stereo.actions.flow import FLOW_ENV
    from stereo.atomic_io import atomic_write_json, atomic_write_text
    from stereo.cli import main as depth_net

    folder = Path(plan.run_dir) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    done = _read(folder / RECORD)
    if done.get("exit_code") == 0 and (done.get("trial_id"), done.get("checkpoint")) == \
            (best["trial_id"], str(best["checkpoint"])):  # a resumed, finished sweep: the hand-over is done
        printer(f"then deploy: already done for {best['trial_id']} ({folder / RECORD}); deployed network "
                f"{done.get('engine') or done.get('onnx')}")
        _record(Path(plan.run_dir), done)
        return done
    deploy = dict(plan.deploy or {}) or deploy_shape(plan)
    atomic_write_text(folder / "spec.yaml", yaml.safe_dump(_spec(best_spec, deploy), sort_keys=False))
    flow = {"results_dir": str(folder), "spec": "spec.yaml", "checkpoint": str(best["checkpoint"])}
    atomic_write_text(folder / "flow.yaml", yaml.safe_dump(flow, sort_keys=False))
    tid = best["trial_id"]
    run = tracker.start_run(f"then deploy {tid}", experiment=plan.experiment, parent_run_id=parent_run_id,
                            tags={"stereo.kind": "flow", "automl.kind": "then_deploy", "automl.trial_id": tid,
                                  "automl.checkpoint": str(best["checkpoint"]), "stereo.results_dir": str(folder)})
    printer(f"then deploy: best trial {tid} ({best['checkpoint']}) -> depth_net flow -e {folder / 'flow.yaml'} "
            f"(MLflow run {run.run_id}, nested under the sweep's run)")
    saved = {k: os.environ.get(k) for k in (FLOW_ENV, "MLFLOW_TRACKING_URI")}
    os.environ.update({FLOW_ENV: run.run_id, "MLFLOW_TRACKING_URI": plan.tracking_uri})
    try:
        code = run_flow(str(folder / "flow.yaml"), [], lambda argv: int(depth_net(argv) or 0), echo=printer)
    except Exception as exc:  # noqa: BLE001 - the sweep is done; the hand-over reports its own failure
        printer(f"then deploy: the flow failed: {type(exc).__name__}: {exc}")
        code = 1
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    engine = sorted((folder / "gen_trt_engine").glob("*.engine")) if engine_available() else []
    record = {"trial_id": tid, "checkpoint": str(best["checkpoint"]), "folder": str(folder), "run_id": run.run_id,
              "exit_code": int(code), "onnx": str(folder / "export" / "model.onnx"),
              "engine": str(engine[0]) if engine else None,
              "runtime": "tensorrt" if engine else "onnxruntime", "metrics": _kpi(folder) if code == 0 else {}}
    tracker.set_tags(run, {"automl.then_deploy.exit_code": str(code)})
    tracker.end_run(run, "FINISHED" if code == 0 else "FAILED")
    atomic_write_json(folder / RECORD, record)
    _record(Path(plan.run_dir), record)
    where = record["engine"] or f"{record['onnx']} (no TensorRT engine here: ONNX Runtime ran the ONNX)"
    printer(f"then deploy: {'done' if code == 0 else f'FAILED (exit {code})'}; deployed network {where}")
    if record["metrics"]:
        printer("then deploy: " + ", ".join(f"{k}={v:.4g}" for k, v in record["metrics"].items())
                + f" ({folder / 'deploy_evaluate' / 'results.json'})")
    return record


def _read(path: Path) -> Dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _record(run_dir: Path, record: Mapping[str, Any]) -> None:
    from stereo.atomic_io import atomic_write_json

    path = run_dir / "results.json"
    data = _read(path)
    data["then_deploy"] = dict(record)
    atomic_write_json(path, data)

