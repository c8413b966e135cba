"""End to end: a real sweep (Ray Tune + Optuna TPE + ASHA + MLflow) on the tiny-demo skill and synthetic
data, one trial SIGKILLed by fault injection, the driver SIGKILLed mid-sweep, then `--resume`; then the
report files it wrote and a real MLflow server serving its store over REST.

One module-scoped run (two Ray starts in all) feeds every assertion.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
import yaml

from automl.tune.ledger import Ledger

SAMPLES = 5


def _cli(*args):
    return [sys.executable, "-m", "automl.cli", "run", *args]


@pytest.fixture(scope="module")
def swept(tmp_path_factory, sweep_overrides, spawn_module, trial_faults):
    root = tmp_path_factory.mktemp("sweep")
    run = root / "run"
    overrides = [*sweep_overrides(root, n_train=4, n_val=2, epochs=3), "train.seed=7"]
    env = trial_faults.env("1=kill")  # tests/automl/trial_faults.py through AUTOML_TRIAL_CALLBACKS
    env.pop("MLFLOW_TRACKING_URI", None)
    first_log = root / "first.log"
    with open(first_log, "w") as log:
        proc = spawn_module(_cli("--skill", "tiny-demo", "--output", str(run), "--num-samples", str(SAMPLES),
                                 "--max-concurrent", "2", *overrides), env=env, stdout=log, stderr=subprocess.STDOUT)
        ledger = Ledger(run)
        deadline = time.time() + 300
        while time.time() < deadline and len([t for t in ledger.trials() if t["status"] != "running"]) < 2:
            assert proc.poll() is None, first_log.read_text()[-3000:]
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started, no chance to clean up
        proc.wait()
    before = {t["trial_id"]: t for t in Ledger(run).trials() if t["status"] != "running"}
    assert len(before) >= 2, first_log.read_text()[-3000:]
    again = spawn_module(_cli("--resume", str(run)), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    out, err = again.communicate(timeout=600)
    resumed = subprocess.CompletedProcess(again.args, again.returncode, out, err)
    return {"run": run, "before": before, "first": first_log.read_text(), "resumed": resumed,
            "ledger": Ledger(run), "results": json.loads((run / "results.json").read_text())}


def test_first_run_printed_the_resume_command(swept):
    # spelled to work as printed: `automl`, the venv's script (not on PATH in a make checkout) or python -m
    assert re.search(rf"resume with: (\S*automl|\S+ -m automl\.cli) run --resume {re.escape(str(swept['run']))}",
                     swept["first"]), swept["first"]


def test_resume_completes_the_budget(swept):
    res = swept["resumed"]
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "Sweep complete" in res.stdout
    assert swept["ledger"].sweep()["state"] == "completed" and swept["ledger"].sweep()["attempts"] == 2
    assert len(swept["ledger"].counted()) == SAMPLES
    assert sorted(p.name for p in (swept["run"] / "tune").iterdir()) == ["attempt-1", "attempt-2"]


def test_finished_trials_were_never_rerun(swept):
    after = {t["trial_id"]: t for t in swept["ledger"].trials()}
    for tid, t in swept["before"].items():
        assert after[tid]["status"] == t["status"] and after[tid]["run_id"] == t["run_id"]
        assert after[tid]["history"] == t["history"]
    ids = [t["trial_id"] for t in swept["ledger"].trials()]
    assert len(ids) == len(set(ids))


def test_the_killed_trial_is_failed_not_zero(swept):
    killed = swept["ledger"].trial("t0001")
    assert killed["status"] == "failed" and killed["metric"] is None and "died" in killed["error"]
    row = next(h for h in swept["results"]["history"] if h["trial_id"] == "t0001")
    assert row["status"] == "failed" and row["metric"] is None


def test_results_json_names_the_best_trial(swept):
    results, counted = swept["results"], swept["ledger"].counted()
    scored = [t for t in counted if t["metric"] is not None]
    best = min(scored, key=lambda t: t["metric"])
    assert results["best"]["trial_id"] == best["trial_id"]
    assert results["best"]["metric"] == pytest.approx(best["metric"])
    assert results["progress"]["complete"] is True
    assert (swept["run"] / "best_spec.yaml").is_file()


def test_every_trial_spec_carries_the_overrides_and_its_sample(swept):
    for t in swept["ledger"].trials():
        spec_file = swept["run"] / "trials" / t["trial_id"] / "train" / "experiment.yaml"
        if not spec_file.is_file():
            continue
        spec = yaml.safe_load(spec_file.read_text())
        assert spec["train"]["num_epochs"] == 3 and spec["train"]["max_steps"] == -1 and spec["train"]["seed"] == 7
        assert spec["dataset"]["train_dataset"]["augmentation"]["crop_size"] == [32, 64]
        assert spec["model"]["train_iters"] == 1 and spec["model"]["volume_dim"] == 8  # skill key_defaults
        assert spec["train"]["optim"]["lr"] == pytest.approx(t["params"]["train.optim.lr"])
        assert spec["train"]["optim"]["lr_decay"] == pytest.approx(t["params"]["train.optim.lr_decay"])
        assert spec["results_dir"] == str(swept["run"] / "trials" / t["trial_id"])


def test_mlflow_has_one_parent_and_one_child_per_trial(swept):
    from stereo.tracking import MlflowTracker, default_tracking_uri

    runs = MlflowTracker(default_tracking_uri(swept["run"])).find_runs("depth_net")
    parents = [r for r in runs if r.tags.get("automl.kind") == "sweep"]
    assert len(parents) == 1 and parents[0].status == "FINISHED"
    parent = parents[0]
    assert parent.tags["automl.decision"] == "sweep" and "tpe" == parent.tags["automl.algorithm"]
    assert "train.optim.lr" in parent.tags["automl.search_space"] and parent.params["num_samples"] == str(SAMPLES)
    children = [r for r in runs if r.parent_run_id == parent.run_id]
    by_trial = {}
    for r in children:
        by_trial.setdefault(r.tags["automl.trial_id"], []).append(r)
    for t in swept["ledger"].counted():
        if t["run_id"] is None:
            continue
        assert len(by_trial[t["trial_id"]]) == 1, t["trial_id"]  # no duplicates after SIGKILL + resume
        child = by_trial[t["trial_id"]][0]
        assert child.status != "RUNNING"
        assert float(child.params["train.optim.lr"]) == pytest.approx(t["params"]["train.optim.lr"])
        if t["status"] == "completed":
            assert child.metrics["val/epe"] == pytest.approx(t["history"][-1]["val/epe"])
            assert not any(k in child.metrics for k in ("pid", "time_this_iter_s", "training_iteration"))
    assert all(r.status != "RUNNING" for r in children)


def test_the_optuna_study_holds_every_trial_once_after_sigkill_and_resume(swept):
    """The study file (<run>/study.journal) opens with Optuna's own API; the SIGKILLed attempt's trials are
    there once each, told what the ledger says (the resume told those the dead driver left running)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(swept["run"] / "study.journal")))
    study = optuna.load_study(study_name="automl", storage=storage)
    trials = study.trials
    ledger = {t["index"]: t for t in swept["ledger"].trials()}
    assert [t.number for t in trials] == list(range(len(trials))) and set(ledger) <= {t.number for t in trials}
    assert not [t.number for t in trials if t.state.name in ("RUNNING", "WAITING")]
    want = {"completed": "COMPLETE", "stopped": "PRUNED", "failed": "FAIL"}
    for trial in trials:
        entry = ledger.get(trial.number)
        if entry is None:
            assert trial.state.name == "FAIL" and trial.user_attrs["outcome"] == "never started"
            continue
        assert trial.user_attrs["trial_id"] == entry["trial_id"]
        assert trial.state.name == ("FAIL" if entry["interrupted"] else want[entry["status"]]), entry["trial_id"]
        assert trial.params == pytest.approx(entry["params"])
        if trial.state.name == "COMPLETE":
            assert trial.value == pytest.approx(entry["metric"])  # its best validation, as the ledger ranks it
        steps = {r["iteration"]: r["val/epe"] for r in entry["history"]} if entry["status"] != "failed" else {}
        assert {k: v for k, v in trial.intermediate_values.items() if k in steps} == pytest.approx(steps)
    assert study.best_trial.user_attrs["trial_id"] == swept["results"]["best"]["trial_id"]
    assert study.best_value == pytest.approx(swept["results"]["best"]["metric"])
    # Optuna's own plots read it (the matplotlib flavour: plotly is not a dependency)
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        axes = optuna.visualization.matplotlib.plot_optimization_history(study)
    assert len(axes.collections[0].get_offsets()) == sum(t.state.name == "COMPLETE" for t in trials)


def test_a_resumed_attempt_samples_new_points(swept):
    points = [tuple(sorted(t["params"].items())) for t in swept["ledger"].trials() if t["params"]]
    assert len(points) == len(set(points))


# --- what the report wrote ---------------------------------------------------------------------------------
def test_plots_are_real_png_files_and_inline_in_the_html(swept):
    html = (swept["run"] / "report.html").read_text()
    for name in ("history", "parallel", "importance"):
        png = swept["run"] / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000, name
    assert html.count("<svg") >= 3 and "Sweep complete" in html
    assert all(t["trial_id"] in html for t in swept["ledger"].trials())


def test_results_json_covers_every_trial(swept):
    results = swept["results"]
    assert {"best", "progress", "history"} <= set(results)
    assert [h["trial_id"] for h in results["history"]] == [t["trial_id"] for t in swept["ledger"].trials()]
    assert results["progress"]["total"] == len(results["history"]) and results["progress"]["failed"] >= 1
    assert results["best"]["run_id"] and results["best"]["params"].keys() == {"train.optim.lr", "train.optim.lr_decay"}


def test_the_best_checkpoint_and_spec_load(swept):
    from stereo.config.load import load_spec
    from stereo.checkpoints import read_checkpoint

    best = swept["results"]["best"]
    ckpt = read_checkpoint(best["checkpoint"])
    assert best["checkpoint"] == str(swept["run"] / "best_checkpoint.safetensors") and len(ckpt.state_dict) > 10
    spec = load_spec(str(swept["run"] / "best_spec.yaml"), action="train")
    assert spec.train.optim.lr == pytest.approx(best["params"]["train.optim.lr"])
    assert spec.results_dir == str(swept["run"] / "retrain")  # never the trial's folder (it would auto-resume)
    # the trials trained with one torch thread: the printed retrain command says so, or its numbers drift
    header = (swept["run"] / "best_spec.yaml").read_text().splitlines()[1]
    assert re.fullmatch(rf"# Retrain: OMP_NUM_THREADS=1 (\S*depth_net|\S+ -m stereo\.cli) train -e "
                        rf"{re.escape(str(swept['run'] / 'best_spec.yaml'))}", header), header


# --- a real MLflow server on the sweep's own store -----------------------------------------------------------
def _rest(url, path, body=None, **query):
    if body is None:
        req = urllib.request.Request(f"{url}{path}?{urllib.parse.urlencode(query)}")
    else:
        req = urllib.request.Request(url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as resp:
        return json.loads(resp.read())


def test_a_real_mlflow_server_serves_every_trial_of_the_sweep(swept, tmp_path):
    from automl.ui.server import start_server

    server = start_server(str(swept["run"]), port=0, log_path=str(tmp_path / "ui.log"))
    try:
        url = server.url
        exp = _rest(url, "/api/2.0/mlflow/experiments/get-by-name", experiment_name="depth_net")["experiment"]
        runs = _rest(url, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]],
                                                          "max_results": 200})["runs"]
        parent = next(r for r in runs if {"key": "automl.kind", "value": "sweep"} in r["data"]["tags"])
        files = _rest(url, "/api/2.0/mlflow/artifacts/list", run_id=parent["info"]["run_id"])["files"]
        assert {"search_space.json", "report"} <= {f["path"] for f in files}
        by_id = {r["info"]["run_id"]: r for r in runs}
        for t in swept["ledger"].trials():
            if t["run_id"] is None:
                continue
            run = by_id[t["run_id"]]  # every trial's run is served
            # the REST API speaks proto3 JSON: an empty list (a trial that failed before its first metric) is omitted
            tags = {x["key"]: x["value"] for x in run["data"].get("tags", [])}
            params = {x["key"]: x["value"] for x in run["data"].get("params", [])}
            metrics = {x["key"]: x["value"] for x in run["data"].get("metrics", [])}
            assert tags["mlflow.parentRunId"] == parent["info"]["run_id"] and tags["automl.trial_id"] == t["trial_id"]
            assert json.loads(tags["automl.sampled"]) == sorted(t["params"])
            for key, value in t["params"].items():
                assert float(params[key]) == pytest.approx(value), key
            assert run["info"]["status"] in ("FINISHED", "FAILED", "KILLED")
            if t["history"]:
                assert metrics["val/epe"] == pytest.approx(t["history"][-1]["val/epe"])
                hist = _rest(url, "/api/2.0/mlflow/metrics/get-history", run_id=t["run_id"], metric_key="val/epe")
                assert len(hist["metrics"]) == len(t["history"])
            assert not {"pid", "time_this_iter_s", "training_iteration", "done"} & set(metrics)
    finally:
        server.stop()


def test_trial_runs_show_what_differs_and_the_parent_says_what_happened(swept, tmp_path):
    """Few params per trial (the sampled keys + key spec fields), the spec as an artifact, datasets and the
    best checkpoint as a model on each trial run; a description and no placeholder on the parent."""
    from mlflow import MlflowClient

    from automl.tune.trial_runs import KEY_SPEC_FIELDS, SPEC_ARTIFACT
    from stereo.tracking import EXPERIMENT_KIND_TAG, NOTE_TAG, TRAINING_KIND, MlflowTracker, default_tracking_uri

    uri = default_tracking_uri(swept["run"])
    runs = MlflowTracker(uri).find_runs("depth_net")
    client = MlflowClient(tracking_uri=uri)
    assert client.get_experiment_by_name("depth_net").tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND
    assert not [(r.name, k) for r in runs for k, v in r.params.items() if "<" in v and ">" in v]  # no placeholder
    parent = next(r for r in runs if r.tags.get("automl.kind") == "sweep")
    assert not any(k.startswith("base.") for k in parent.params) and len(parent.params) < 20
    assert "base_spec.yaml" in {f.path for f in client.list_artifacts(parent.run_id)}
    note = parent.tags[NOTE_TAG]
    assert "| rank | trial | outcome | best/val/epe |" in note and "**Decision:** sweep" in note
    best = swept["results"]["best"]
    assert f"| 1 | {best['trial_id']} | completed | {best['metric']:.4g} |" in note
    assert "viewStateShareKey=" + parent.run_id in note and "plots/parallel.png" in note
    for t in swept["ledger"].counted():
        if t["run_id"] is None or t["status"] not in ("completed", "stopped"):
            continue
        run = next(r for r in runs if r.run_id == t["run_id"])
        assert set(run.params) == set(t["params"]) | set(KEY_SPEC_FIELDS)
        assert run.metrics["best/val/epe"] == pytest.approx(t["metric"])
        full = client.get_run(run.run_id)
        assert {d.dataset.name for d in full.inputs.dataset_inputs} == {"train/fsd.txt", "val/fsd.txt"}
        (model,) = full.outputs.model_outputs
        assert client.get_logged_model(model.model_id).source_run_id == run.run_id
        local = client.download_artifacts(run.run_id, SPEC_ARTIFACT, str(tmp_path / run.run_id))
        with open(local) as fh:
            spec = json.load(fh)
        assert spec["train"]["optim"]["lr"] == pytest.approx(t["params"]["train.optim.lr"])


# --- what a newcomer sees in a real browser ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def ui_on_sweep(swept, spawn_module):
    """`automl ui` on the sweep's folder, started as a user starts it (the process group is killed after)."""
    import select

    from automl.ui.server import free_port

    port = free_port()
    proc = spawn_module([sys.executable, "-m", "automl.cli", "ui", "--store", str(swept["run"]), "--port", str(port)],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, deadline, fd = "", time.monotonic() + 120, proc.stdout.fileno()
    while "compare top:" not in out and time.monotonic() < deadline and proc.poll() is None:
        if select.select([fd], [], [], 1.0)[0]:  # raw reads: a buffered readline would hide the next lines
            out += os.read(fd, 65536).decode(errors="replace")
    assert f"MLflow UI: http://127.0.0.1:{port}" in out, out
    return {"url": f"http://127.0.0.1:{port}", "printed": out}


def _printed_links(swept, base):
    """The two links `automl run` printed at the end, pointed at this test's port."""
    out = swept["resumed"].stdout
    runs = next(line.split("then open:", 1)[1].strip() for line in out.splitlines() if "then open:" in line)
    compare = next(line.split("compare top:", 1)[1].strip() for line in out.splitlines() if "compare top:" in line)
    return (runs.replace("http://127.0.0.1:5000", base), compare.replace("http://127.0.0.1:5000", base))


def test_the_printed_link_shows_the_ranked_trials_and_their_sampled_values_in_chromium(swept, ui_on_sweep):
    from automl.ui.browser import dump_dom, find_chromium, visible_text
    from stereo.tracking import MlflowTracker, default_tracking_uri

    if find_chromium() is None:
        pytest.skip("no Chromium on this machine and `make chromium` could not install it (apt-get)")
    runs_url, compare_url = _printed_links(swept, ui_on_sweep["url"])
    # `automl ui` prints the same two links at its own address
    assert f"latest sweep:  {runs_url}" in ui_on_sweep["printed"]
    assert f"compare top:   {compare_url}" in ui_on_sweep["printed"]
    text = visible_text(dump_dom(runs_url))
    assert "Sort: best/val/epe" in text and "matching runs" in text, text[:2000]
    assert "Traces 0" not in text and "Token Usage" not in text  # the training view, not the GenAI overview
    trials = [t for t in swept["ledger"].counted() if t["run_id"] and t["metric"] is not None]
    records = {r.run_id: r for r in MlflowTracker(default_tracking_uri(swept["run"])).find_runs("depth_net")}
    for column in ("best/val/epe", "train.optim.lr", "train.optim.lr_decay", "automl.outcome"):
        assert column in text, column
    ranked = sorted(trials, key=lambda t: t["metric"])
    positions = [text.index(f" {t['trial_id']} ") for t in ranked]
    assert positions == sorted(positions), "rows are not in ranked order"
    for t in ranked:
        run = records[t["run_id"]]
        assert run.metrics["best/val/epe"] == pytest.approx(t["metric"])
        assert repr(run.metrics["best/val/epe"]) in text, t["trial_id"]  # the value the sweep ranked it by
        for key in ("train.optim.lr", "train.optim.lr_decay"):
            assert run.params[key] in text, (t["trial_id"], key)  # the sampled value, as a visible column
    failed = [t["trial_id"] for t in swept["ledger"].counted() if t["status"] == "failed"]
    assert all(f" {tid} " in text for tid in failed)  # listed too, after the ranked ones

    compare = visible_text(dump_dom(compare_url))
    assert "Parallel Coordinates Plot" in compare and "train.optim.lr_decay" in compare
    assert all(t["trial_id"] in compare for t in ranked[:5])
