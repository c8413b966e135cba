"""automl/cli.py on a skill that lacks its train schema or template: the policy is reached, the review
says why AutoML cannot run and how to fix it, and the plain run needs a base spec (--spec or the template)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from automl.cli import main

TAO_FFS = Path(__file__).resolve().parents[2] / "fixtures" / "tao_skill_ffs" / "tao-train-fast-foundation-stereo"
SCHEMA, TEMPLATE = "schemas/train.schema.json", "references/spec_template_train.yaml"
NOT_RUNNABLE = ("AutoML is enabled for tao-train-fast-foundation-stereo but not runnable until schemas are "
                "generated (missing: {})")


def _skill_without(tmp_path: Path, *files: str) -> Path:
    skill = tmp_path / "tao-ffs"
    shutil.copytree(TAO_FFS, skill)
    for name in files:
        (skill / name).unlink()
    return skill


@pytest.mark.parametrize("missing", [SCHEMA, TEMPLATE])
@pytest.mark.parametrize("with_spec", [False, True], ids=["no-spec", "spec"])
def test_dry_run_reaches_the_policy(tmp_path, capsys, missing, with_spec):
    skill = _skill_without(tmp_path, missing)
    args = ["run", "--skill-dir", str(skill), "--dry-run", "--output", str(tmp_path / "run")]
    spec = tmp_path / "my_spec.yaml"
    if with_spec:
        shutil.copy(TAO_FFS / TEMPLATE, spec)
        args += ["--spec", str(spec)]
    assert main(args) == 2  # the template's placeholders or no base spec: NOT READY (the review still says all)
    out = capsys.readouterr().out
    assert "NOT READY" in out
    assert "decision     plain (policy auto)" in out and NOT_RUNNABLE.format(missing) in out
    assert f"fix: python -m stereo.config.jsonschema --skill-dir {skill}" in out
    assert "one plain training run (train action), no Ray" in out
    if with_spec:
        assert f"base spec    {spec} + skill key_defaults" in out
    elif missing == SCHEMA:
        assert f"base spec    {skill / TEMPLATE} + skill key_defaults" in out
    else:
        assert "base spec    none (no --spec, no spec template)" in out
        assert (f"no base spec: {skill / TEMPLATE} does not exist and no --spec was given; pass --spec <your train "
                "spec YAML>") in out
    if missing == TEMPLATE:
        assert f"add {TEMPLATE} to {skill} by hand" in out  # the generator writes schemas, not templates
    assert not (tmp_path / "run").exists()


def test_both_files_missing_name_both(tmp_path, capsys):
    skill = _skill_without(tmp_path, SCHEMA, TEMPLATE)
    assert main(["run", "--skill-dir", str(skill), "--policy", "on", "--dry-run"]) == 2  # no base spec
    out = capsys.readouterr().out
    assert "decision     plain (policy on)" in out and NOT_RUNNABLE.format(f"{SCHEMA}, {TEMPLATE}") in out


def test_without_template_or_spec_the_run_refuses_with_what_to_pass(tmp_path, capsys):
    skill = _skill_without(tmp_path, TEMPLATE)
    assert main(["run", "--skill-dir", str(skill), "--output", str(tmp_path / "run")]) == 2
    captured = capsys.readouterr()
    assert NOT_RUNNABLE.format(TEMPLATE) in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("automl: error: not launching: no base spec: ")
    assert "pass --spec <your train spec YAML>" in err[0]


@pytest.mark.slow
def test_without_template_the_spec_trains_plainly(tmp_path, capsys):
    """The whole path on the tiny model: template removed, --spec given -> one real plain training run."""
    from stereo.data.synthetic import generate

    skill = tmp_path / "tiny"
    shutil.copytree(Path(__file__).resolve().parents[3] / "skills" / "tiny-demo", skill)
    template = skill / TEMPLATE
    spec = yaml.safe_load(template.read_text())
    template.unlink()
    for split, seed in (("train_dataset", 0), ("val_dataset", 1)):
        data = generate(tmp_path / split, "fsd", n=2 - seed, height=32, width=64, max_disparity=24, seed=seed)
        spec["dataset"][split]["data_sources"][0].update(data_file=str(data), dataset_name="FSD")
    spec["train"]["max_steps"] = 2
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    run = tmp_path / "run"
    assert main(["run", "--skill-dir", str(skill), "--spec", str(tmp_path / "spec.yaml"), "--output", str(run)]) == 0
    out = capsys.readouterr().out
    assert "AutoML is enabled for tiny-demo but not runnable until schemas are generated (missing: " \
           f"{TEMPLATE})" in out and "plain training SUCCESS" in out
    assert (run / "train" / "dn_model_best.safetensors").is_file() and (run / "launch.json").is_file()
