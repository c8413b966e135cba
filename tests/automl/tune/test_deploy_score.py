"""The trial's deploy step (automl/tune/deploy_score.py) on its own, without Ray: a tiny-demo checkpoint exported,
run (ONNX Runtime on the CPU; TensorRT on a GPU node, skipped elsewhere), evaluated on the val set and timed, and
booked into the ledger row of the kept validation."""
import dataclasses

import pytest

from automl.tune.deploy_score import book, score_deployed
from automl.tune.ledger import Ledger


def _gpu_engine() -> bool:
    from stereo.actions.chain import engine_available

    return engine_available()


@pytest.fixture(scope="module")
def trial(tmp_path_factory, sweep_overrides):
    """(raw trial spec, checkpoint of its seeded model) for tiny-demo at 32x64 with 2 val pairs."""
    import torch

    from automl.plan.configs import RunConfig, SearchConfig, TuneConfig
    from automl.plan.launch import build_plan
    from stereo.checkpoints import save_checkpoint
    from stereo.config.load import load_spec
    from stereo.models import build_model

    root = tmp_path_factory.mktemp("deploy-score")
    plan = build_plan(SearchConfig(skill="tiny-demo", overrides=tuple(sweep_overrides(root, n_val=2))),
                      TuneConfig(num_samples=1), RunConfig(output=str(root / "run")))
    raw = {**plan.base_spec, "results_dir": str(root / "trial")}
    spec = load_spec(raw, action="train")
    torch.manual_seed(0)
    ckpt = save_checkpoint(root / "ckpt", build_model(spec.model).state_dict(),
                           config=dataclasses.asdict(spec.model))
    return raw, str(ckpt)


@pytest.mark.parametrize("runtime, device", [
    ("onnxruntime", "cpu"),
    pytest.param("tensorrt", "cuda", marks=pytest.mark.skipif(not _gpu_engine(), reason="needs TensorRT and a CUDA "
                                                                                        "GPU (a GPU node)")),
])
def test_the_kept_checkpoint_is_scored_as_it_ships(trial, tmp_path, runtime, device):
    raw, ckpt = trial
    raw = {**raw, "results_dir": str(tmp_path / "trial")}
    deploy = {"height": 32, "width": 64, "device": device, "runtime": runtime, "threads": 1, "warmup": 1,
              "repeats": 5, "valid_iters": None, "monitor": "val/epe", "monitor_mode": "min"}
    score = score_deployed(raw, ckpt, deploy)
    m = score.metrics
    assert set(m) == {"deploy/epe", "deploy/latency_ms", "deploy/peak_mem_mb", "deploy/drift_px"}
    assert m["deploy/epe"] > 0 and m["deploy/latency_ms"] > 0 and 0 <= m["deploy/drift_px"] < 1e-2
    assert score.params["deploy.runtime"] == runtime and score.params["deploy.shape"] == "1x3x32x64"
    assert score.params["deploy.device"].startswith(device)
    assert score.params["deploy.valid_iters"] == raw["model"]["valid_iters"]
    suffix = ".onnx" if runtime == "onnxruntime" else ".engine"
    assert score.files["deployed"].endswith(suffix) and (tmp_path / "trial" / "evaluate" / "results.json").is_file()

    ledger = Ledger(tmp_path / "run", metric="deploy/epe")
    ledger.start_trial("t0000", 0, {})
    for step, epe in ((1, 3.0), (2, 2.0), (3, 2.5)):
        ledger.add_validation("t0000", {"iteration": step, "epoch": step - 1, "step": step, "val/epe": epe})
    row = book(ledger, "t0000", score, "val/epe", "min")
    assert row["step"] == 2  # the kept checkpoint's validation
    ledger.finalize("t0000", "completed")
    entry = ledger.trial("t0000")
    assert entry["metric"] == m["deploy/epe"] and entry["best_step"] == 2
    assert ledger.progress("t0000")["deploy"]["deploy.runtime"] == runtime
