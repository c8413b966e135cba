"""automl/tune/backend.py without a Ray cluster: Optuna mapping, relations, grid, study seeding; automl/tune/trial.py
with a plain report function (one tiny training each)."""
import math

import optuna
import pytest

from automl.policy.decision import PolicyDecision
from automl.space.param import Param
from automl.tune.ledger import Ledger
from automl.plan.launch import LaunchPlan
from automl.space.relations import Relation
from automl.space.search_space import SearchSpace
from automl.tune.backend import DefineByRun, grid_points, hyperband_brackets, prepare_study
from automl.tune.trial import TrialContext, TrialFailure, run_trial, trial_raw_spec


def _related_space():
    return SearchSpace({"min_lr": Param.real(1e-6, 1e-2, log=True), "lr": Param.real(1e-6, 1e-2, log=True)},
                       relations={"lr": (Relation(">", "min_lr"),)})


def test_define_by_run_honours_depends_on():
    space = _related_space()
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=3))
    fn = DefineByRun(space)
    for _ in range(12):
        trial = study.ask()
        extra = fn(trial)
        assert extra == {"_index": trial.number}
        assert trial.params["lr"] > trial.params["min_lr"] and space.contains(trial.params)
        study.tell(trial, trial.params["lr"])


def test_grid_drops_points_that_break_relations():
    points, notes = grid_points(_related_space(), 3)
    assert len(points) == 3 and all(p["lr"] > p["min_lr"] for p in points)  # 3 of 9 have lr > min_lr
    assert "6 dropped" in notes[0]
    log_axis = sorted({p["lr"] for p in grid_points(SearchSpace({"lr": Param.real(1e-4, 1e-2, log=True)}), 3)[0]})
    assert log_axis == pytest.approx([1e-4, 1e-3, 1e-2])


def _plan(tmp_path, **kw):
    return LaunchPlan(skill_name="x", skill_dir="x", decision=PolicyDecision("sweep", "auto", ()), spec_source="x",
                      base_spec={},
                      overrides=[], run_dir=str(tmp_path), tracking_uri="sqlite:////x.db", **kw)


def test_prepare_study_keeps_numbers_and_remaining_budget(tmp_path):
    space = SearchSpace({"lr": Param.real(1e-4, 1e-2, log=True)})
    led = Ledger(tmp_path)
    led.start_trial("t0000", 0, {"lr": 1e-3})
    led.add_validation("t0000", {"iteration": 1, "val/epe": 2.0})
    led.finalize("t0000", "completed")
    led.start_trial("t0002", 2, {"lr": 2e-3})
    led.finalize("t0002", "failed", error="boom")
    led.start_trial("t0003", 3, {"lr": 3e-3})  # left running by a dead driver
    storage, todo = prepare_study(_plan(tmp_path, num_samples=5), space, led)
    study = optuna.load_study(study_name="automl", storage=storage)
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "FAIL", "FAIL", "FAIL"] and study.trials[0].value == 2.0
    assert todo == 3  # 5 - (1 completed + 1 failed); the running one does not count
    assert study.ask().number == 4  # the next trial gets a fresh id: t0004


def test_grid_resume_enqueues_only_the_missing_points(tmp_path):
    space = SearchSpace({"lr": Param.real(1e-4, 1e-2, log=True)})
    led = Ledger(tmp_path)
    first = grid_points(space, 3)[0][0]
    led.start_trial("t0000", 0, first)
    led.add_validation("t0000", {"iteration": 1, "val/epe": 1.0})
    led.finalize("t0000", "completed")
    storage, todo = prepare_study(_plan(tmp_path, algorithm="grid", grid_points=3), space, led)
    assert todo == 2
    study = optuna.load_study(study_name="automl", storage=storage)
    trial = study.ask()
    DefineByRun(space)(trial)
    assert trial.params["lr"] == pytest.approx(1e-3)


def test_hyperband_brackets_follow_s_max():
    assert hyperband_brackets(1, 1, 3) == 1  # one rung: plain ASHA
    assert hyperband_brackets(9, 1, 3) == 3 and hyperband_brackets(8, 1, 2) == 4 and hyperband_brackets(4, 2, 2) == 2


def test_prepare_study_reads_the_metric_in_either_namespace(tmp_path):
    space = SearchSpace({"lr": Param.real(1e-4, 1e-2, log=True)})
    led = Ledger(tmp_path, metric="epe")
    led.start_trial("t0000", 0, {"lr": 1e-3})
    led.add_validation("t0000", {"iteration": 1, "val/epe": 3.0})
    led.add_validation("t0000", {"iteration": 2, "val/epe": 2.0})
    led.finalize("t0000", "completed")
    storage, _ = prepare_study(_plan(tmp_path, metric="epe"), space, led)
    trial = optuna.load_study(study_name="automl", storage=storage).trials[0]
    assert trial.value == 2.0 and trial.intermediate_values == {1: 3.0, 2: 2.0}


def test_sampled_values_land_in_the_trial_spec():
    raw = trial_raw_spec({"train": {"optim": {"lr": 1.0}}, "results_dir": "old"}, {"train.optim.lr": 0.5}, "/r/t1")
    assert raw == {"train": {"optim": {"lr": 0.5}}, "results_dir": "/r/t1"}


# --- run_trial with a plain report function ------------------------------------------------------
@pytest.fixture(scope="module")
def base_spec(tmp_path_factory):
    from automl.plan.skills import find_skill
    from stereo.config.load import apply_key_defaults, parse_override, set_path
    from stereo.data.synthetic import generate

    root = tmp_path_factory.mktemp("trial")
    tr = generate(root / "train", "fsd", n=2, height=32, width=64, max_disparity=24, seed=0)
    va = generate(root / "val", "fsd", n=1, height=32, width=64, max_disparity=24, seed=1)
    skill = find_skill("tiny-demo")
    raw = apply_key_defaults(skill.key_defaults, skill.load_template("train"))
    for text in (f"dataset.train_dataset.data_sources[0].data_file={tr}", f"dataset.val_dataset.data_sources[0]."
                 f"data_file={va}", "dataset.train_dataset.data_sources[0].dataset_name=FSD",
                 "dataset.val_dataset.data_sources[0].dataset_name=FSD", "train.num_epochs=2", "train.max_steps=-1",
                 "dataset.train_dataset.augmentation.crop_size=[32,64]", "model.train_iters=1", "model.valid_iters=1"):
        key, value = parse_override(text)
        set_path(raw, key, value)
    return raw


def test_a_trial_reports_every_validation(tmp_path, base_spec):
    reports = []
    ctx = TrialContext(run_dir=str(tmp_path), base_spec=base_spec)
    entry = run_trial({"_index": 0, "train.optim.lr": 2e-3}, ctx, reports.append)
    assert [r["epoch"] for r in reports] == [1, 2] and all(math.isfinite(r["val/epe"]) for r in reports)
    assert entry["epochs"] == 2 and entry["metric"] == min(r["val/epe"] for r in reports)
    assert Ledger(tmp_path).progress("t0000")["outcome"] == "completed" and entry["checkpoint"]


def test_a_metric_that_is_never_logged_fails_the_trial(tmp_path, base_spec):
    ctx = TrialContext(run_dir=str(tmp_path), base_spec=base_spec, metric="val/nope")
    with pytest.raises(TrialFailure, match="val/nope.* is not a validation metric; use one of"):
        run_trial({"_index": 1, "train.optim.lr": 2e-3}, ctx, lambda m: None)
    assert "val/nope" in Ledger(tmp_path).progress("t0001")["error"]


def test_a_bad_sample_fails_with_the_spec_error(tmp_path, base_spec):
    ctx = TrialContext(run_dir=str(tmp_path), base_spec=base_spec)
    with pytest.raises(TrialFailure, match="lr"):
        run_trial({"_index": 2, "train.optim.lr": -1.0}, ctx, lambda m: None)


def test_a_stop_without_a_verdict_is_an_interruption_and_leaves_at_once(tmp_path, base_spec):
    # Ray stops every trial when the sweep is interrupted; the driver wrote no verdict for it
    def stop(metrics):
        raise SystemExit(0)

    ctx = TrialContext(run_dir=str(tmp_path), base_spec=base_spec)
    with pytest.raises(SystemExit):
        run_trial({"_index": 3, "train.optim.lr": 2e-3}, ctx, stop)
    progress = Ledger(tmp_path).progress("t0003")
    assert progress["outcome"] == "interrupted" and len(progress["history"]) == 1
    status = _status(tmp_path, "t0003")
    assert status["status"] == "FAILURE" and "interrupted" in status["message"]


def _status(run_dir, tid):
    import json

    lines = (run_dir / "trials" / tid / "train" / "status.json").read_text().splitlines()
    return json.loads(lines[-1])


def _stopper(ledger, tid, verdict, after):
    """What Ray and the driver do: the driver writes its verdict, then Ray's stop arrives out of report()."""
    seen = []

    def report(metrics):
        seen.append(metrics)
        if len(seen) == after:
            ledger.finalize(tid, verdict)
            raise SystemExit(0)
    return report, seen


def test_a_scheduler_stop_ends_the_training_cleanly(tmp_path, base_spec):
    from stereo.checkpoints import read_checkpoint

    report, seen = _stopper(Ledger(tmp_path), "t0009", "stopped", after=1)
    ctx = TrialContext(run_dir=str(tmp_path), base_spec=base_spec, scheduler="asha", max_t=2)
    entry = run_trial({"_index": 9, "train.optim.lr": 2e-3}, ctx, report)  # no SystemExit escapes
    assert len(seen) == 1 and entry["epochs"] == 1
    assert Ledger(tmp_path).progress("t0009")["outcome"] == "stopped"
    status = _status(tmp_path, "t0009")
    assert status["status"] == "SUCCESS" and "stopped early by asha after 1 validation," in status["message"]
    train = tmp_path / "trials" / "t0009" / "train"
    latest = read_checkpoint(str(train / "dn_model_latest.safetensors")).meta["meta"]
    assert latest["step"] == seen[0]["step"]  # the stopped epoch's checkpoint was written
    assert read_checkpoint(entry["checkpoint"]).meta["meta"]["metrics"]["val/epe"] == pytest.approx(entry["metric"])


def test_the_metric_may_be_named_without_its_namespace(tmp_path, base_spec):
    # deploy KPIs say 'epe', training logs 'val/epe': `--metric epe` is the same objective
    reports = []
    ctx = TrialContext(run_dir=str(tmp_path), base_spec=base_spec, metric="epe")
    entry = run_trial({"_index": 4, "train.optim.lr": 2e-3}, ctx, reports.append)
    assert all(r["epe"] == r["val/epe"] for r in reports)  # the scheduler finds the name it was given
    assert entry["metric"] == min(r["val/epe"] for r in reports) and entry["status"] == "running"


def test_the_best_checkpoint_follows_the_sweep_metric_and_mode(tmp_path, base_spec):
    from stereo.checkpoints import read_checkpoint

    ctx = TrialContext(run_dir=str(tmp_path), base_spec=base_spec, metric="epe", mode="max")
    reports = []
    entry = run_trial({"_index": 5, "train.optim.lr": 2e-3}, ctx, reports.append)
    assert len({r["val/epe"] for r in reports}) == 2 and entry["metric"] == max(r["val/epe"] for r in reports)
    meta = read_checkpoint(entry["checkpoint"]).meta["meta"]
    assert meta["mode"] == "max" and meta["metrics"]["val/epe"] == pytest.approx(entry["metric"])  # the worst epe


@pytest.mark.parametrize("fault, reason", [("raise", "injected fault"), ("nan", "val/epe=nan")])
def test_an_injected_fault_fails_the_trial_with_its_reason(tmp_path, base_spec, monkeypatch, trial_faults, fault,
                                                           reason):
    trial_faults.install(monkeypatch, f"6={fault}")
    ctx = TrialContext(run_dir=str(tmp_path), base_spec=base_spec)
    with pytest.raises(TrialFailure, match=reason):
        run_trial({"_index": 6, "train.optim.lr": 2e-3}, ctx, lambda m: None)
    progress = Ledger(tmp_path).progress("t0006")
    assert progress["outcome"] == "failed" and reason in progress["error"]


def test_a_first_attempt_only_fault_lets_the_retry_succeed(tmp_path, base_spec, monkeypatch, trial_faults):
    trial_faults.install(monkeypatch, "7=raise@1")
    ctx = TrialContext(run_dir=str(tmp_path), base_spec=base_spec)
    with pytest.raises(TrialFailure):
        run_trial({"_index": 7, "train.optim.lr": 2e-3}, ctx, lambda m: None)
    entry = run_trial({"_index": 7, "train.optim.lr": 2e-3}, ctx, lambda m: None)  # what Ray's retry does
    assert entry["attempt"] == 2 and entry["metric"] is not None and entry["error"] is None


@pytest.mark.slow
def test_a_scheduler_stop_after_the_last_validation_is_a_completion(tmp_path, base_spec):
    from stereo.tracking import MlflowTracker, default_tracking_uri, ensure_experiment

    uri = default_tracking_uri(tmp_path)
    ensure_experiment(uri, "depth_net")
    report, seen = _stopper(Ledger(tmp_path), "t0008", "completed", after=2)  # ASHA at max_t
    ctx = TrialContext(run_dir=str(tmp_path), base_spec=base_spec, tracking_uri=uri, max_t=2, scheduler="asha")
    entry = run_trial({"_index": 8, "train.optim.lr": 2e-3}, ctx, report)
    progress = Ledger(tmp_path).progress("t0008")
    assert progress["outcome"] == "completed" and len(progress["history"]) == 2 and progress["checkpoint"]
    status = _status(tmp_path, "t0008")
    assert status["status"] == "SUCCESS" and status["message"].startswith("Training finished at step")
    tracker = MlflowTracker(uri)
    run = tracker.find_runs("depth_net", tags={"automl.trial_id": "t0008"})[0]
    assert run.status == "FINISHED" and run.run_id == progress["run_id"]
    assert run.metrics["best/val/epe"] == pytest.approx(entry["metric"])
    assert run.metrics["best/step"] == entry["best_step"]
    # every metric point once: the final KPIs are not logged again at the last step
    for key in ("val/epe", "train_loss", "best/val/epe"):
        steps = [m.step for m in tracker.client.get_metric_history(run.run_id, key)]
        assert len(steps) == len(set(steps)), (key, steps)
    files = {f.path for f in tracker.client.list_artifacts(run.run_id, "checkpoints")}
    assert any(f.startswith("checkpoints/dn_model_best_epoch_") and f.endswith(".safetensors") for f in files), files


def test_ray_optuna_search_samples_every_kind_and_survives_its_pickle(tmp_path):
    """Ray's OptunaSearch with our define-by-run space (no cluster needed): every Param kind reaches the
    trial config through Optuna's own distributions, also after the searcher is saved and restored."""
    from ray.tune.search.optuna import OptunaSearch

    space = SearchSpace({"lr": Param.real(0.0, 1e-2, low_open=True), "steps": Param.integer(32, 96, step=32),
                         "bs": Param.power_of(2, 1, 8), "opt": Param.categorical(("AdamW", "SGD")),
                         "aug": Param.boolean(), "max_lr": Param.real(1e-6, 1e-1, log=True)},
                        relations={"max_lr": (Relation(">", "lr"),)})
    search = OptunaSearch(space=DefineByRun(space), metric="val/epe", mode="min",
                          sampler=optuna.samplers.RandomSampler(seed=0))
    configs = [search.suggest(f"t{i}") for i in range(6)]
    search.save(str(tmp_path / "searcher.pkl"))
    again = OptunaSearch(space=DefineByRun(space), metric="val/epe", mode="min")
    again.restore(str(tmp_path / "searcher.pkl"))
    configs.append(again.suggest("t6"))
    for i, config in enumerate(configs):
        sampled = {k: v for k, v in config.items() if k != "_index"}
        assert config["_index"] == i and space.contains(sampled), space.problems(sampled)
    assert {type(configs[0][k]) for k in ("lr", "steps", "bs", "opt", "aug")} == {float, int, str, bool}
