"""`depth_net init-checkpoint`: a random checkpoint of a registered model in the published layout."""
from __future__ import annotations

import csv
import json

import pytest
import torch

from stereo.cli import main
from stereo.models import build_model, preset_config
from stereo.checkpoints import read_checkpoint, read_sidecar


@pytest.mark.slow
def test_cli_writes_the_published_layout_that_every_reader_takes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["init-checkpoint", "preset=ffs_tiny", "output=ckpt/tiny.pth", "seed=3"]) == 0
    first, _, result = capsys.readouterr().out.partition("\n")
    assert first == "depth_net init-checkpoint: spec (key=value pairs only), results_dir ckpt/init-checkpoint"
    out = json.loads(result)
    assert out["status"] == "SUCCESS" and out["model_type"] == "FastFoundationStereo"
    ckpt = tmp_path / "ckpt"
    # the checkpoint files, beside the run's MLflow store (mlflow.db and its creation lock, mlflow.db.lock)
    assert sorted(p.name for p in ckpt.iterdir() if p.is_file() and not p.name.startswith("mlflow.db")) == [
        "tiny.json", "tiny.pth", "tiny.safetensors"]
    assert (ckpt / "mlflow.db").is_file()
    side = read_sidecar(ckpt / "tiny.json")
    assert side["config"] == json.loads(json.dumps(__import__("dataclasses").asdict(preset_config("ffs_tiny"))))
    assert side["meta"]["seed"] == 3 and "random" in side["meta"]["initialisation"]
    ours = read_checkpoint(ckpt / "tiny.safetensors").state_dict  # SHA-256 checked
    tao = read_checkpoint(ckpt / "tiny.pth")  # tensors hash checked
    assert tao.format == "lightning" and tao.meta["config"]["model_type"] == "FastFoundationStereo"
    raw = torch.load(ckpt / "tiny.pth", weights_only=True)  # what a TAO user's script does
    assert all(k.startswith("model.") for k in raw["state_dict"])
    model = build_model(preset_config("ffs_tiny"))
    model.load_state_dict(ours)
    torch.manual_seed(3)
    again = build_model(preset_config("ffs_tiny")).state_dict()  # the seed decides the weights
    assert all(torch.equal(again[k], v) for k, v in ours.items())
    status = [json.loads(line) for line in (ckpt / "init-checkpoint" / "status.json").read_text().splitlines()]
    assert status[0]["status"] == "STARTED" and status[-1]["status"] == "SUCCESS"
    assert status[-1]["kpi"]["num_parameters"] == sum(p.numel() for p in model.parameters())


@pytest.mark.slow
def test_existing_output_unknown_preset_and_missing_output_are_bad_input(tmp_path, capsys):
    out = str(tmp_path / "a.pth")
    assert main(["init-checkpoint", "preset=ffs_tiny", f"output={out}"]) == 0
    capsys.readouterr()
    assert main(["init-checkpoint", "preset=ffs_tiny", f"output={out}"]) == 2
    assert "already exist; set overwrite=true" in capsys.readouterr().err
    assert main(["init-checkpoint", "preset=ffs_tiny", f"output={out}", "overwrite=true"]) == 0
    assert main(["init-checkpoint", "preset=ffs_bp3", f"output={tmp_path / 'b' / 'b.pth'}"]) == 2
    err = capsys.readouterr().err
    assert "unknown model preset 'ffs_bp3'" in err and "did you mean 'ffs_bp2'" in err
    assert not (tmp_path / "b").exists()  # refused before any folder, status file or MLflow store was made
    assert main(["init-checkpoint", f"model_spec={tmp_path / 'nope.yaml'}", f"output={tmp_path / 'c' / 'c.pth'}"]) == 2
    assert "model_spec=" in capsys.readouterr().err and not (tmp_path / "c").exists()
    assert main(["init-checkpoint", "preset=ffs_tiny"]) == 2
    assert "output is empty" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.shared
def test_bp2_pth_has_every_key_and_shape_of_the_tao_manifest(tmp_path, reference_dir):
    """The bp2 preset's .pth holds exactly the tensors of NVIDIA's TAO bp2 state dict (TAO names and shapes;
    only TAO's int8 `dx` lookup buffer is left out, which TAO's loader allows to be missing)."""
    assert main(["init-checkpoint", f"output={tmp_path / 'bp2.pth'}"]) == 0  # preset ffs_bp2 is the default
    with open(reference_dir / "manifests" / "ffs_bp2_tao.tsv", newline="") as fh:
        rows = {r["key"]: r for r in csv.DictReader(fh, delimiter="\t")}
    state = torch.load(tmp_path / "bp2.pth", weights_only=True)["state_dict"]
    got = {k.removeprefix("model."): tuple(v.shape) for k, v in state.items()}
    want = {k: () if r["shape"] in ("", "scalar") else tuple(int(d) for d in r["shape"].split("x"))
            for k, r in rows.items() if k != "dx"}
    assert got == want


def test_model_block_of_a_spec(tmp_path):
    """model_spec=: the network a depth_net spec describes (here a tiny FFS), loadable by that spec's actions."""
    import dataclasses

    import yaml

    from stereo.actions.init_checkpoint import init_checkpoint
    from stereo.config.init_checkpoint import InitCheckpointConfig
    from stereo.training.weights import load_weights

    model = {**dataclasses.asdict(preset_config("ffs_tiny")), "classifier_mid": 6}
    spec = tmp_path / "train.yaml"
    spec.write_text(yaml.safe_dump({"model": model}))
    res = init_checkpoint(InitCheckpointConfig(output=str(tmp_path / "m"), model_spec=str(spec)), tracker=False)
    assert res.status == "SUCCESS" and [p.rsplit("/", 1)[-1] for p in res.files] == ["m.safetensors", "m.json",
                                                                                      "m.pth"]
    assert read_sidecar(tmp_path / "m.json")["config"]["classifier_mid"] == 6
    for name in ("m.pth", "m.safetensors"):
        load_weights(build_model(preset_config("ffs_tiny", classifier_mid=6)), tmp_path / name,
                     model_type="FastFoundationStereo")
