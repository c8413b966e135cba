"""Done-when test of issue 11: NVIDIA's FFS spec templates, placeholders filled, chained the way the TAO
skill chains them, on a bp2-shaped checkpoint from `depth_net init-checkpoint`:

    init-checkpoint -> train -> evaluate -> inference -> export -> deploy inference -> deploy evaluate

Each step is the user's own command (`depth_net <action> -e <template>` through stereo.cli.main, real files,
real MLflow stores, ONNX Runtime) and reads its input where the previous step published it:
`<train results_dir>/train/dn_model_latest.pth` (evaluate, inference), `.../dn_model_best.pth` (export),
`<export results_dir>/ffs_bp2_static.onnx` (deploy). The deploy template names only `model.model_type`:
the other bp2 fields come from the ONNX sidecar.

What is overridden, and why:
* placeholders (`<out_dir>`, `<*_data_root>`, `<bp2_ckpt_path>`, `<dataset_name>`) — what every user fills;
* the deploy template's absolute paths (`results_dir: /results`, `trt_engine`, `onnx_file`, the data
  files): no TensorRT on a CPU host, so the deploy actions run the exported ONNX with ONNX Runtime;
* for the 2-core CI budget only (CPU_BUDGET below): train/val crops 320x736 -> 64x128 and the export size
  480x736 -> 64x128 (the images are 64x128). Everything else — bp2 widths, 8/22 GRU iterations, 1 epoch,
  batch 1, 4 workers, fp32, AdamW/MultiStepLR — is the templates' own.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from stereo.actions.status import read_status
from stereo.cli import main
from stereo.data.synthetic import generate

pytestmark = pytest.mark.slow  # seven bp2 actions, about a minute

#: the only non-path values changed from NVIDIA's templates (CPU budget; see the module docstring)
CPU_BUDGET = {
    "train": ["dataset.train_dataset.augmentation.crop_size=[64,128]",
              "dataset.val_dataset.augmentation.crop_size=[64,128]"],
    "export": ["export.input_height=64", "export.input_width=128"],
}


def _annotations(root: Path, n: int, seed: int, columns: int = 3) -> Path:
    """`<root>/annotations.txt`, the name the templates use, over n generic 64x128 pairs."""
    ann = generate(root, "generic", n=n, height=64, width=128, max_disparity=24, seed=seed, columns=columns)
    return ann.rename(root / "annotations.txt")


def _fill(template: Path, out: Path, values: dict[str, str]) -> Path:
    text = template.read_text()
    for key, value in values.items():
        text = text.replace(f"<{key}>", value)
    assert not re.search(r"<\w+>", text), f"unfilled placeholder in {template.name}"
    out.write_text(text)
    return out


def _cli(capsys, *argv: str) -> dict:
    """Run `depth_net <argv>`; returns the printed result; checks the first line and the exit code."""
    code = main(list(argv))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    first, _, rest = captured.out.partition("\n")
    assert first.startswith(f"depth_net {argv[0]}: spec ") and ", results_dir " in first
    return json.loads(rest[rest.index("\n{") + 1:] if not rest.startswith("{") else rest)  # after the bars


def _finished(results_dir: Path, action: str) -> dict:
    """The action's status.json ends SUCCESS and its MLflow run (in the job's own store) is FINISHED."""
    from stereo.tracking import MlflowTracker

    status = read_status(results_dir / action)
    assert status[0]["status"] == "STARTED" and status[-1]["status"] == "SUCCESS", status[-1]
    (run,) = MlflowTracker(f"sqlite:///{results_dir / 'mlflow.db'}").find_runs("depth_net",
                                                                                 tags={"action": action})
    assert run.status == "FINISHED"
    return {"status": status[-1], "run": run}


@pytest.mark.slow  # about a minute on an idle 2-core CPU (seven bp2 actions); it still runs in CI
def test_nvidia_ffs_templates_chain_from_train_to_deploy(tmp_path, capsys, monkeypatch, tao_skill_dir):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    refs = tao_skill_dir / "references"
    data = {"train_data_root": _annotations(tmp_path / "data" / "train", 2, 0).parent,
            "val_data_root": _annotations(tmp_path / "data" / "val", 1, 1).parent,
            "eval_data_root": _annotations(tmp_path / "data" / "eval", 2, 2).parent,
            "infer_data_root": _annotations(tmp_path / "data" / "infer", 2, 3, columns=2).parent}
    data = {k: str(v) for k, v in data.items()}
    jobs = {a: tmp_path / "jobs" / a for a in ("train", "evaluate", "inference", "export", "deploy")}

    # a bp2-shaped checkpoint without the real weights (dry run)
    init = _cli(capsys, "init-checkpoint", f"output={tmp_path / 'ptm' / 'ffs_bp2_random.pth'}")
    bp2_init = init["files"][2]
    assert bp2_init.endswith("ffs_bp2_random.pth")

    # train: NVIDIA's template, finetuning "the bp2 checkpoint"
    spec = _fill(refs / "spec_template_train.yaml", tmp_path / "train.yaml",
                 {"out_dir": str(jobs["train"]), "bp2_ckpt_path": bp2_init, "dataset_name": "GenericDataset", **data})
    trained = _cli(capsys, "train", "-e", str(spec), *CPU_BUDGET["train"])
    train_dir = jobs["train"] / "train"
    latest, best = train_dir / "dn_model_latest.pth", train_dir / "dn_model_best.pth"
    assert trained["status"] == "SUCCESS" and trained["global_step"] == 2  # 1 epoch of 2 samples, batch 1
    assert _finished(jobs["train"], "train")["run"].tags["model_type"] == "FastFoundationStereo"
    for pth in (latest, best):  # what TAO users' scripts do with the chained names
        obj = torch.load(pth, map_location="cpu", weights_only=True)
        assert obj["stereo_automl"]["config"]["volume_dim"] == 28 and all(k.startswith("model.")
                                                                          for k in obj["state_dict"])

    # evaluate / inference / export: the TAO chain paths
    chained = {"bp2_ckpt_path": str(latest), "dataset_name": "GenericDataset", **data}
    spec = _fill(refs / "spec_template_evaluate.yaml", tmp_path / "evaluate.yaml",
                 {**chained, "out_dir": str(jobs["evaluate"])})
    evaluated = _cli(capsys, "evaluate", "-e", str(spec))
    pyt_epe = evaluated["kpi"]["val/epe"]
    assert evaluated["counts"]["images"] == 2 and pyt_epe == pytest.approx(
        _finished(jobs["evaluate"], "evaluate")["status"]["kpi"]["val/epe"])

    spec = _fill(refs / "spec_template_inference.yaml", tmp_path / "inference.yaml",
                 {**chained, "out_dir": str(jobs["inference"])})
    inferred = _cli(capsys, "inference", "-e", str(spec))
    assert inferred["count"] == 2 and len(list((jobs["inference"] / "inference").glob("*.pfm"))) == 2
    _finished(jobs["inference"], "inference")

    spec = _fill(refs / "spec_template_export.yaml", tmp_path / "export.yaml",
                 {**chained, "bp2_ckpt_path": str(best), "out_dir": str(jobs["export"])})
    exported = _cli(capsys, "export", "-e", str(spec), *CPU_BUDGET["export"])
    onnx = jobs["export"] / "ffs_bp2_static.onnx"
    assert exported["onnx_file"] == str(onnx) and exported["shape_mode"] == "static"
    assert exported["max_abs_diff"] < 1e-3 and _finished(jobs["export"], "export")

    # deploy: the TAO deploy template (model_type only), the ONNX in place of the engine
    spec = tmp_path / "deploy.yaml"
    shutil.copy(refs / "spec_template_deploy.yaml", spec)
    deploy = [f"results_dir={jobs['deploy']}", f"inference.trt_engine={onnx}", f"evaluate.trt_engine={onnx}",
              f"gen_trt_engine.onnx_file={onnx}",
              f"dataset.infer_dataset.data_sources[0].data_file={data['infer_data_root']}/annotations.txt",
              f"dataset.test_dataset.data_sources[0].data_file={data['eval_data_root']}/annotations.txt"]
    deployed = _cli(capsys, "inference", "-e", str(spec), *deploy)
    assert deployed["count"] == 2 and _finished(jobs["deploy"], "inference")["run"].tags["deploy_runtime"] == \
        "onnxruntime"
    scored = _cli(capsys, "evaluate", "-e", str(spec), *deploy)
    done = _finished(jobs["deploy"], "evaluate")
    assert scored["kpi"]["epe"] == pytest.approx(done["status"]["kpi"]["epe"])
    assert scored["kpi"]["size_mismatch_images"] == 0.0  # 64x128 images, 64x128 graph: nothing fitted
    warned = [s["message"] for s in read_status(jobs["deploy"] / "evaluate") if s.get("verbosity") == "WARNING"]
    assert warned == ["evaluate.input_height/input_width ask for 480x736 but the graph is static at 64x128: the "
                      "graph's size is used; re-export at 480x736 (export.input_height/width) or set "
                      "evaluate.input_height/input_width to 64/128"]  # the template's size vs the CPU-budget graph
    # the graph of dn_model_best scores what PyTorch scored with dn_model_latest (the same step here)
    assert scored["kpi"]["epe"] == pytest.approx(pyt_epe, abs=1e-2)
    resolved = (jobs["deploy"] / "evaluate" / "experiment.yaml").read_text()
    assert "volume_dim: 28" in resolved and "gru_hidden: 60" in resolved  # taken from the ONNX sidecar
