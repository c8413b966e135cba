"""The shipped skills stay runnable: their generated schemas match the dataclasses, their defaults the presets."""
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from stereo.config.jsonschema import write_skill_schemas
from stereo.models.registry import preset_config

SKILLS = Path(__file__).resolve().parents[3] / "skills"


@pytest.mark.parametrize("name", ["fast-foundation-stereo", "foundation-stereo", "tiny-demo"])
def test_committed_skill_schemas_match_the_generator(tmp_path, name):
    copy = tmp_path / name
    shutil.copytree(SKILLS / name, copy)
    written = write_skill_schemas(copy)
    assert any(p.name == "train.schema.json" for p in written)
    for path in written:
        committed = SKILLS / name / "schemas" / path.name
        assert committed.is_file(), (
            f"{committed} missing: run python -m stereo.config.jsonschema --skill-dir skills/{name}")
        assert committed.read_text() == path.read_text(), (
            f"{committed} drifted from the spec dataclasses: run "
            f"python -m stereo.config.jsonschema --skill-dir skills/{name}")


def test_tiny_demo_defaults_are_the_ffs_tiny_preset():
    info = yaml.safe_load((SKILLS / "tiny-demo" / "references" / "skill_info.yaml").read_text())
    preset = asdict(preset_config("ffs_tiny"))
    model_defaults = {k.split(".", 1)[1]: v for k, v in info["key_defaults"].items() if k.startswith("model.")}
    assert model_defaults, "tiny-demo has no model key_defaults"
    for key, value in model_defaults.items():
        assert preset[key] == value, f"tiny-demo key_defaults model.{key}={value!r} but ffs_tiny has {preset[key]!r}"
    assert info["key_defaults"]["dataset.max_disparity"] == preset["max_disparity"]
