"""TAO's checkpoint layout: the published links load in every action, dn_model_best follows the monitored
metric and mode, and a rerun cleans what a killed run left behind."""
import dataclasses
import json
from pathlib import Path

import pytest

from stereo.errors import ActionError
from stereo.config.load import load_spec
from stereo.data.synthetic import generate
from stereo.models import preset_config
from stereo.checkpoints import checkpoint_sha256, read_checkpoint, read_sidecar, save_checkpoint

pytestmark = pytest.mark.slow  # real trainings, every action on their checkpoints


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {"train": generate(root / "train", "fsd", n=8, height=64, width=128, max_disparity=24, seed=0),
            "val": generate(root / "val", "fsd", n=2, height=64, width=128, max_disparity=24, seed=1)}


def _split(ann, batch_size=2):
    return {"data_sources": [{"dataset_name": "FSD", "data_file": str(ann)}], "batch_size": batch_size,
            "workers": 0, "augmentation": {"crop_size": [64, 96]}}


def _raw(results, data, *, val=True, **train):
    dataset = {"max_disparity": 32, "train_dataset": _split(data["train"]), "test_dataset": _split(data["val"], 1),
               "infer_dataset": _split(data["val"], 1)}
    if val:
        dataset["val_dataset"] = _split(data["val"])
    return {"results_dir": str(results), "dataset": dataset, "model": dataclasses.asdict(preset_config("ffs_tiny")),
            "train": {"num_epochs": 100, "max_steps": 8, "seed": 2, "validation_interval": 1,
                      "log_every_n_steps": 4, "optim": {"lr": 4e-3, "lr_scheduler": "MultiStepLR",
                                                        "lr_steps": [1000]}, **train}}


def _train(raw, **kwargs):
    from stereo.actions.train import train

    return train(load_spec(raw), tracker=False, **kwargs)


def _best_pairs(train_dir: Path) -> list[str]:
    return sorted(p.name for p in train_dir.glob("dn_model_best_*"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data):
    results = tmp_path_factory.mktemp("run") / "results"
    raw = _raw(results, data)
    return raw, _train(raw)


def test_layout_has_one_best_pair_behind_the_links(trained):
    raw, result = trained
    train_dir = Path(raw["results_dir"]) / "train"
    best = train_dir / "dn_model_best.safetensors"
    assert result.best_checkpoint == str(best) and best.is_symlink()
    target = best.resolve()
    assert target.name.startswith("dn_model_best_epoch_") and target.parent == train_dir
    assert _best_pairs(train_dir) == [target.with_suffix(".json").name, target.with_suffix(".pth").name,
                                      target.name]
    assert (train_dir / "dn_model_best.json").resolve() == target.with_suffix(".json")
    assert (train_dir / "dn_model_best.pth").resolve() == target.with_suffix(".pth")
    assert (train_dir / "dn_model_latest.safetensors").resolve().name == "model_epoch_001_step_00008.safetensors"
    meta = read_checkpoint(best).meta["meta"]  # verified: sha256 of the target
    assert meta["monitor"] == "val/epe" and meta["mode"] == "min"
    assert meta["metrics"]["val/epe"] == pytest.approx(result.best_metrics["val/epe"])
    for ckpt in train_dir.glob("model_epoch_*.ckpt"):  # a resume state always has its weights pair
        assert read_checkpoint(ckpt.with_suffix(".safetensors")).format == "stereo"


@pytest.mark.parametrize("link", ["dn_model_best.safetensors", "dn_model_latest.safetensors", "dn_model_best.pth",
                                  "dn_model_latest.pth"])
def test_every_action_loads_the_published_links(trained, tmp_path, link):
    from stereo.actions.evaluate import evaluate
    from stereo.actions.export import export
    from stereo.actions.inference import inference

    raw, result = trained
    path = str(Path(raw["results_dir"]) / "train" / link)
    raw = {**raw, "results_dir": str(tmp_path / "results"), "evaluate": {"checkpoint": path},
           "inference": {"checkpoint": path}, "export": {"checkpoint": path, "onnx_file": "m.onnx", "input_height": 64,
                                                         "input_width": 128, "valid_iters": 2}}
    ev = evaluate(load_spec(raw), tracker=False)
    assert ev.status == "SUCCESS"
    if link.startswith("dn_model_best"):  # the link loads exactly the weights validation scored
        assert ev.metrics["epe"] == pytest.approx(result.best_metrics["val/epe"], rel=1e-5)
    assert inference(load_spec(raw), tracker=False).status == "SUCCESS"
    exported = export(load_spec(raw), tracker=False)
    side = json.loads(Path(exported.sidecar_file).read_text())
    assert side["source_checkpoint"]["sha256"] == checkpoint_sha256(Path(path).resolve())
    raw["train"] = {**raw["train"], "pretrained_model_path": path, "max_steps": 1}
    assert _train(raw).status == "SUCCESS"


@pytest.mark.parametrize("monitor, mode, pick", [("epe", "max", max), ("val/d1", "min", min)])
def test_best_follows_the_monitored_metric_and_mode(tmp_path, data, monitor, mode, pick):
    result = _train(_raw(tmp_path / "results", data, max_steps=12), monitor=monitor, monitor_mode=mode)
    key = "val/" + monitor.removeprefix("val/")
    values = [row[key] for row in result.history]
    assert len(values) == 3 and len(set(values)) == 3
    assert result.best_metrics[key] == pick(values)
    meta = read_sidecar(result.best_checkpoint)["meta"]
    assert meta["monitor"] == key and meta["mode"] == mode and meta["metrics"][key] == pytest.approx(pick(values))
    assert len(_best_pairs(tmp_path / "results" / "train")) == 3  # one set: .json + .pth + .safetensors


def test_pth_links_are_tao_style_weights_only_files(trained, tmp_path):
    """What a TAO user's script does with the chained names: torch.load(weights_only=True), TAO's keys."""
    import torch

    from stereo.models import build_model
    from stereo.errors import CheckpointFormatError
    from stereo.checkpoints.remap_ffs import tao_to_upstream

    raw, result = trained
    train_dir = Path(raw["results_dir"]) / "train"
    for name in ("dn_model_latest", "dn_model_best"):
        pth = train_dir / f"{name}.pth"
        assert pth.is_symlink() and pth.resolve().with_suffix(".safetensors") == (
            train_dir / f"{name}.safetensors").resolve()
        obj = torch.load(pth, map_location="cpu", weights_only=True)
        assert all(k.startswith("model.") for k in obj["state_dict"])
        assert any(".downsample_layers." in k for k in obj["state_dict"])  # TAO 7 names, not ours
        assert obj["stereo_automl"]["config"]["model_type"] == "FastFoundationStereo"
        ours = read_checkpoint(pth.resolve().with_suffix(".safetensors")).state_dict
        renamed = tao_to_upstream({k[len("model."):]: v for k, v in obj["state_dict"].items()})
        model = build_model(preset_config("ffs_tiny"))
        assert set(renamed) - set(ours) == set(model.ignored_keys()) - {"dx"}  # TAO's never-executed modules
        assert all(torch.equal(renamed[k], ours[k]) for k in ours)
        model.load_upstream_state_dict(renamed)  # strict
    assert obj["epoch"] == read_sidecar(train_dir / "dn_model_best.json")["meta"]["epoch"]

    tampered = tmp_path / "copied.pth"  # a copy travels with its own hash: a changed tensor is refused
    obj["state_dict"][next(iter(obj["state_dict"]))].add_(1.0)
    torch.save(obj, tampered)
    with pytest.raises(CheckpointFormatError, match="tensors hash"):
        read_checkpoint(tampered)


def test_tao_resume_path_to_the_pth_means_its_resume_state(trained):
    """TAO's skill sets train.resume_training_checkpoint_path to <results_dir>/train/dn_model_latest.pth."""
    from stereo.training.resume import check_resume_state, resolve_resume_path

    raw, _ = trained
    train_dir = Path(raw["results_dir"]) / "train"
    resume = resolve_resume_path(str(train_dir / "dn_model_latest.pth"), train_dir)
    assert resume == train_dir / "dn_model_latest.ckpt" and resume.resolve().name == "model_epoch_001_step_00008.ckpt"
    check_resume_state(resume)


def test_unknown_monitor_or_mode_is_bad_input(tmp_path, data):
    for kwargs, match in (({"monitor": "val/eep"}, "not a validation metric"),
                          ({"monitor_mode": "lowest"}, "monitor_mode='lowest'")):
        with pytest.raises(ActionError, match=match) as err:
            _train(_raw(tmp_path / "results", data), **kwargs)
        assert err.value.exit_code == 2


def test_without_validation_best_is_the_last_checkpoint(tmp_path, data):
    result = _train(_raw(tmp_path / "results", data, val=False, max_steps=4))
    train_dir = tmp_path / "results" / "train"
    assert result.best_checkpoint == str(train_dir / "dn_model_best.safetensors")
    assert Path(result.best_checkpoint).resolve().name == "model_epoch_000_step_00004.safetensors"
    assert read_checkpoint(result.best_checkpoint).format == "stereo" and not _best_pairs(train_dir)


def test_rerun_removes_what_a_killed_run_left(tmp_path, data):
    raw = _raw(tmp_path / "results", data, max_steps=4)
    first = _train(raw)
    train_dir = tmp_path / "results" / "train"
    kept = Path(first.best_checkpoint).resolve().name
    # what a run killed later would leave: a newer best pair the resume state does not know (the links
    # already moved to it), half of a weights pair, an orphan sidecar, temp files
    future = save_checkpoint(train_dir / "dn_model_best_epoch_009_step_00040", read_checkpoint(
        first.best_checkpoint).state_dict, config=dataclasses.asdict(preset_config("ffs_tiny")))
    for suffix in (".safetensors", ".json"):
        link = train_dir / f"dn_model_best{suffix}"
        link.unlink()
        link.symlink_to(future.with_suffix(suffix).name)
    (train_dir / "model_epoch_005_step_00020.json").write_text(
        (train_dir / "model_epoch_000_step_00004.json").read_text())
    (train_dir / "model_epoch_006_step_00024.safetensors").write_bytes(
        (train_dir / "model_epoch_000_step_00004.safetensors").read_bytes())
    (train_dir / ".model_epoch_001_step_00008.ckpt.tmp").write_bytes(b"partial")

    raw["train"]["max_steps"] = 5
    second = _train(raw)
    assert second.resumed_from.endswith("model_epoch_000_step_00004.ckpt") and second.global_step == 5
    names = {p.name for p in train_dir.iterdir()}
    assert not {"dn_model_best_epoch_009_step_00040.safetensors", "model_epoch_005_step_00020.json",
                "model_epoch_006_step_00024.safetensors", ".model_epoch_001_step_00008.ckpt.tmp"} & names
    best = _best_pairs(train_dir)
    assert len(best) == 3 and Path(second.best_checkpoint).resolve().name in best
    assert kept in best or second.best_metrics["val/epe"] < first.best_metrics["val/epe"]
    assert read_checkpoint(second.best_checkpoint).format == "stereo"
