"""automl/plan/skills.py: TAO-layout skill directories, ours and TAO's own, read-only."""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import pytest

from automl.plan.skills import SKILLS_ROOT, SkillError, expand_shorthand, find_skill, list_skills, load_skill

SHIPPED = ("fast-foundation-stereo", "foundation-stereo", "tiny-demo")
TAO_FFS = Path(__file__).resolve().parents[2] / "fixtures" / "tao_skill_ffs" / "tao-train-fast-foundation-stereo"


@pytest.fixture(scope="session")
def tao_skill_dir() -> Path:
    """TAO's real FFS skill from the committed copy (tests/fixtures/tao_skill_ffs): runs on a clean clone."""
    return TAO_FFS



def _tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_loads_tao_ffs_skill_unchanged_and_writes_nothing(tao_skill_dir):
    before = _tree_digest(tao_skill_dir)
    skill = load_skill(tao_skill_dir)
    assert skill.name == "tao-train-fast-foundation-stereo" and skill.network_arch == "depth_net_stereo"
    assert skill.automl_enabled and skill.has_train_schema and skill.has_train_template
    assert skill.model_type == "FastFoundationStereo"
    assert set(skill.actions) == {"train", "evaluate", "export", "inference"}
    assert skill.key_defaults["model.max_disparity"] == 192
    # "../references/x.yaml" is relative to references/, where skill_info.yaml lives
    assert skill.template_path("train") == tao_skill_dir / "references" / "spec_template_train.yaml"
    assert skill.load_template("train")["model"]["volume_dim"] == 28
    assert skill.load_schema("train")["automl_default_parameters"] == ["train.optim.lr", "train.optim.lr_decay"]
    assert skill.extra["container_image"].startswith("nvcr.io/") and "data_sources" in skill.extra
    assert _tree_digest(tao_skill_dir) == before


def test_tao_skill_copy_reports_missing_files(tao_skill_copy):
    (tao_skill_copy / "schemas" / "train.schema.json").unlink()
    skill = load_skill(tao_skill_copy)
    assert not skill.has_train_schema and skill.has_train_template
    facts = skill.facts()
    assert (facts.model, facts.has_train_schema, facts.skill_dir) == (skill.name, False, str(tao_skill_copy))
    with pytest.raises(SkillError, match="generate it with python -m stereo.config.jsonschema --skill-dir"):
        skill.load_schema("train")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_skills(name):
    skill = find_skill(name)
    assert skill.path == SKILLS_ROOT / name and skill.name == name
    assert skill.automl_enabled and skill.has_train_template and skill.has_template("evaluate")
    assert skill.network_arch == "depth_net_stereo" and "train" in skill.actions
    template = skill.load_template("train")
    assert template["model"]["model_type"] == skill.model_type
    # the template's model block agrees with key_defaults, so generated schemas and templates match
    for key, value in skill.key_defaults.items():
        section, field = key.split(".", 1)
        assert template[section][field] == value, key
    assert expand_shorthand(skill, ["learning_rate=1e-4"]) == ["train.optim.lr=1e-4"]


def test_shipped_model_types():
    assert [find_skill(n).model_type for n in SHIPPED] == ["FastFoundationStereo", "FoundationStereo",
                                                            "FastFoundationStereo"]
    assert find_skill("tiny-demo").key_defaults["model.cnn_backbone"] == "edgenext_tiny"
    assert find_skill("tiny-demo").key_defaults["model.max_disparity"] == 32


def test_shipped_key_defaults_are_valid_model_fields():
    from stereo.config.model import FFS_BP2, ModelConfig
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    for name in SHIPPED:
        keys = [k.split(".", 1)[1] for k in find_skill(name).key_defaults if k.startswith("model.")]
        assert set(keys) <= fields, set(keys) - fields
    ffs = find_skill("fast-foundation-stereo").key_defaults
    assert all(ffs[f"model.{k}"] == v for k, v in FFS_BP2.items())


def test_find_skill_by_name_variant_path_and_unknown(tmp_path):
    assert find_skill("Fast_Foundation_Stereo").name == "fast-foundation-stereo"
    assert find_skill(str(SKILLS_ROOT / "tiny-demo")).name == "tiny-demo"
    assert list_skills() == sorted(SHIPPED)
    with pytest.raises(SkillError, match=r"unknown skill 'fast-foundaton-stereo' \(did you mean "
                                         r"'fast-foundation-stereo'\?\); available: "):
        find_skill("fast-foundaton-stereo")
    with pytest.raises(SkillError, match=r"\(none under"):
        find_skill("x", roots=[tmp_path])


def test_find_skill_matches_the_name_inside_skill_info(tmp_path):
    _write_info(tmp_path / "dir-name", "name: other-name\nautoml_enabled: false\n")
    assert find_skill("other_name", roots=[tmp_path]).path == tmp_path / "dir-name"


def _write_info(root: Path, text: str) -> Path:
    (root / "references").mkdir(parents=True)
    (root / "references" / "skill_info.yaml").write_text(text)
    return root


@pytest.mark.parametrize("text, words", [
    ("automl_enabled: true\n", "key 'name': expected the skill's name"),
    ("name: x\nautoml_enabled: 'yes'\n", "key 'automl_enabled': expected true or false, got 'yes'"),
    ("name: x\nactions: [train]\n", "key 'actions': expected a mapping, got list"),
    ("name: x\nspec_shorthand_keys: {lr: 3}\n", "key 'spec_shorthand_keys.lr': expected a string"),
    ("- a list\n", "expected a YAML mapping at the top"),
    ("name: [unclosed\n", "not valid YAML"),
])
def test_bad_skill_info_names_the_file_and_key(tmp_path, text, words):
    root = _write_info(tmp_path / "s", text)
    with pytest.raises(SkillError) as err:
        load_skill(root)
    assert str(root / "references" / "skill_info.yaml") in str(err.value) and words in str(err.value)


def test_missing_skill_info_and_defaults(tmp_path):
    with pytest.raises(SkillError, match="references/skill_info.yaml"):
        load_skill(tmp_path)
    skill = load_skill(_write_info(tmp_path / "s", "name: bare\nunknown_field: {a: 1}\n"))
    assert not skill.automl_enabled and skill.model_type is None and skill.extra == {"unknown_field": {"a": 1}}
    assert skill.template_path("train") == tmp_path / "s" / "references" / "spec_template_train.yaml"
    assert not skill.has_train_template and not skill.has_train_schema
    with pytest.raises(SkillError, match="key 'spec_templates.train'"):
        skill.load_template("train")


def test_model_type_falls_back_to_spec_params(tmp_path):
    skill = load_skill(_write_info(tmp_path / "s", "name: s\nspec_params:\n  evaluate: {model.model_type: FS}\n"))
    assert skill.model_type == "FS"


def test_skill_is_frozen():
    skill = find_skill("tiny-demo")
    with pytest.raises(dataclasses.FrozenInstanceError):
        skill.name = "x"
    with pytest.raises(TypeError):
        skill.key_defaults["model.max_disparity"] = 64


def test_expand_shorthand():
    skill = find_skill("fast-foundation-stereo")
    assert expand_shorthand(skill, ["learning_rate=1e-4", "num_epochs = 3", "train.optim.lr_decay=0.5",
                                    "results_dir=/x=y"]) == \
        ["train.optim.lr=1e-4", "train.num_epochs= 3", "train.optim.lr_decay=0.5", "results_dir=/x=y"]
    with pytest.raises(SkillError, match="must look like key=value"):
        expand_shorthand(skill, ["learning_rate"])


def test_skill_paths_are_absolute_even_from_a_relative_dir(monkeypatch):
    monkeypatch.chdir(SKILLS_ROOT)
    assert load_skill("tiny-demo").path.is_absolute() and os.path.isabs(load_skill("tiny-demo").facts().skill_dir)
