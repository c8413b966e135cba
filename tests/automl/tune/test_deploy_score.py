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


@pytest.fixture
def reports(tmp_path, monkeypatch):
    """A DeployReports over a ledger with two validations and a kept checkpoint; the deploy step is faked (the
    real one is tested above) so that only the order of reports is under test."""
    import automl.tune.deploy_score as ds

    calls = []
    fake = ds.DeployScore({"deploy/epe": 1.5, "deploy/latency_ms": 2.0, "deploy/peak_mem_mb": 3.0,
                           "deploy/drift_px": 0.0}, {"deploy.runtime": "onnxruntime"})
    monkeypatch.setattr(ds, "score_deployed", lambda raw, ckpt, deploy: calls.append(ckpt) or fake)
    ledger = Ledger(tmp_path, metric="deploy/epe")
    ledger.start_trial("t0000", 0, {})
    best = tmp_path / "trials" / "t0000" / "train" / "dn_model_best.safetensors"
    best.parent.mkdir(parents=True)
    best.write_bytes(b"x")

    def make(hold: bool, max_t: int = 2):
        sent = []
        r = ds.DeployReports(sent.append, ledger=ledger, trial_id="t0000", raw={}, metric="deploy/epe",
                             deploy={"monitor": "val/epe", "monitor_mode": "min"}, max_t=max_t, tracking_uri=None,
                             hold=hold)
        return r, sent

    def validate(r, step, epe):
        ledger.add_validation("t0000", {"iteration": step, "epoch": step - 1, "step": step, "val/epe": epe})
        r({"val/epe": epe, "epoch": step})

    return make, validate, calls, ledger, str(best)


def test_the_last_validations_report_carries_the_deploy_metrics(reports):
    make, validate, calls, ledger, best = reports
    r, sent = make(hold=False)
    validate(r, 1, 2.0)
    assert sent == [{"val/epe": 2.0, "epoch": 1}] and calls == []
    validate(r, 2, 3.0)
    assert calls == [best] and sent[-1]["deploy/epe"] == 1.5 and sent[-1]["val/epe"] == 3.0
    assert ledger.progress("t0000")["history"][0]["deploy/epe"] == 1.5  # the kept (best val/epe) validation's row
    r.finish(stopped_early=False)
    assert calls == [best]  # scored once


def test_a_deploy_metric_reaches_ray_once_at_the_end(reports):
    make, validate, calls, _, _ = reports
    r, sent = make(hold=True)
    validate(r, 1, 2.0)
    assert sent == []
    validate(r, 2, 1.0)
    assert len(sent) == 1 and sent[0]["deploy/epe"] == 1.5 and sent[0]["epoch"] == 2


def test_an_unknown_budget_is_scored_after_training_and_an_early_stop_is_not(reports):
    make, validate, calls, ledger, _ = reports
    r, sent = make(hold=True, max_t=0)
    validate(r, 1, 2.0)
    r.finish(stopped_early=False)
    assert len(calls) == 1 and sent[-1]["deploy/epe"] == 1.5 and sent[-1]["val/epe"] == 2.0
    r2, _ = make(hold=False, max_t=3)
    r2.finish(stopped_early=True)
    assert len(calls) == 1 and "stopped early" in ledger.progress("t0000")["deploy"]["skipped"]
