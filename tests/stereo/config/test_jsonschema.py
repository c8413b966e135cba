"""Generated TAO-dialect schemas: committed files are current, readable by TAO's reader rules, honest."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from stereo.config.jsonschema import generate_schema, schema_actions, schema_json
from stereo.config.model import FFS_BP2
from stereo.config.reference_doc import render_reference

REPO = Path(__file__).resolve().parents[3]
REGENERATE = "python -m stereo.config.jsonschema --out schemas"
#: value types the TAO AutoML search-space reader can sample
TAO_SEARCHABLE_TYPES = {"float", "int", "ordered_int", "categorical", "bool", "subset_list", "optional_list"}


def tao_reader_leaves(schema: dict, prefix: str = ""):
    """Flatten `properties` the way TAO's search-space reader does: dotted path -> leaf dict."""
    for name, entry in schema.get("properties", {}).items():
        if not isinstance(entry, dict):  # TAO's files also keep list-valued bookkeeping inside properties
            continue
        path = prefix + name
        if entry.get("type") == "collection" or "properties" in entry:
            yield from tao_reader_leaves(entry, path + ".")
        else:
            yield path, entry


def tao_reader_problems(schema: dict) -> list:
    """The rules TAO's reader relies on for every automl-enabled leaf."""
    problems = []
    for path, leaf in tao_reader_leaves(schema):
        if not leaf.get("automl_enabled"):
            continue
        if leaf.get("type") not in TAO_SEARCHABLE_TYPES:
            problems.append(f"{path}: type {leaf.get('type')!r} not searchable")
        if "default" not in leaf:
            problems.append(f"{path}: no default")
            continue
        low, high, default = leaf.get("minimum", -math.inf), leaf.get("maximum", math.inf), leaf["default"]
        if not low <= default <= high:
            problems.append(f"{path}: default {default} outside [{low}, {high}]")
        if "enum" in leaf and default not in leaf["enum"]:
            problems.append(f"{path}: default {default!r} not in enum")
    return problems


@pytest.mark.parametrize("action", schema_actions())
def test_committed_schemas_match_the_dataclasses(action):
    path = REPO / "schemas" / f"{action}.schema.json"
    assert path.is_file(), f"{path} missing; run `{REGENERATE}`"
    assert path.read_text() == schema_json(generate_schema(action)), f"{path} is stale; run `{REGENERATE}`"


def test_committed_reference_doc_is_current():
    path = REPO / "docs" / "spec_reference.md"
    command = "python -m stereo.config.reference_doc --out docs/spec_reference.md"
    assert path.read_text() == render_reference(), f"docs/spec_reference.md is stale; run `{command}`"


def test_generation_is_deterministic():
    assert schema_json(generate_schema("train")) == schema_json(generate_schema("train"))


def test_our_train_schema_passes_tao_reader_rules():
    schema = generate_schema("train")
    assert tao_reader_problems(schema) == []
    leaves = dict(tao_reader_leaves(schema))
    enabled = {p for p, leaf in leaves.items() if leaf.get("automl_enabled")}
    assert set(schema["automl_default_parameters"]) == enabled


def test_reader_rules_catch_tao_style_mistakes(tao_skill_dir):
    """The same reader accepts TAO's real schema and rejects a default outside its range."""
    tao = json.loads((tao_skill_dir / "schemas" / "train.schema.json").read_text())
    assert tao_reader_problems(tao) == []
    tao["properties"]["train"]["properties"]["optim"]["properties"]["lr"]["default"] = 1.0
    assert tao_reader_problems(tao) == ["train.optim.lr: default 1.0 outside [1e-06, 0.01]"]


def test_every_leaf_default_respects_its_own_range_and_enum():
    for action in schema_actions():
        for path, leaf in tao_reader_leaves(generate_schema(action)):
            if "default" in leaf and "enum" in leaf:
                assert leaf["default"] in leaf["enum"], path
            default = leaf.get("default")
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                assert leaf.get("minimum", -math.inf) <= default <= leaf.get("maximum", math.inf), path


def test_dialect_shape_matches_tao(tao_skill_dir):
    tao = json.loads((tao_skill_dir / "schemas" / "train.schema.json").read_text())
    ours = generate_schema("train")
    assert set(tao) <= set(ours)
    assert ours["x_tao_schema"]["action"] == "train" and ours["type"] == "object"
    assert ours["properties"]["train"]["properties"]["optim"]["type"] == "collection"
    lr = ours["properties"]["train"]["properties"]["optim"]["properties"]["lr"]
    assert {k: lr[k] for k in ("type", "default", "minimum", "maximum", "automl_enabled")} == \
        {"type": "float", "default": 1e-4, "minimum": 1e-6, "maximum": 1e-2, "automl_enabled": True}
    assert lr["log_scale"] is True


def test_never_searched_fields():
    schema = generate_schema("train")
    enabled = set(schema["automl_default_parameters"])
    assert not any(p.startswith(("dataset.val_dataset", "dataset.test_dataset", "dataset.infer_dataset"))
                   for p in enabled)
    assert not enabled & {"model.volume_dim", "model.corr_radius", "model.cv_group", "train.optim.momentum"}
    assert "dataset.infer_dataset.augmentation.color_aug_prob" in schema["automl_disabled_parameters"]
    for action in ("evaluate", "inference", "export", "gen_trt_engine"):
        assert generate_schema(action)["automl_default_parameters"] == []
    sched = schema["properties"]["train"]["properties"]["optim"]["properties"]["lr_scheduler"]
    assert sched["default"] in sched["enum"] and "MultiStep" not in sched["enum"]


def test_per_model_schema_with_bp2_defaults(tao_skill_dir):
    info = yaml.safe_load((tao_skill_dir / "references" / "skill_info.yaml").read_text())
    schema = generate_schema("train", defaults=info["key_defaults"],
                             automl_default_parameters=["train.optim.lr", "train.optim.lr_decay"],
                             model="depth-net-fast-stereo")
    assert schema["automl_default_parameters"] == ["train.optim.lr", "train.optim.lr_decay"]
    model = schema["properties"]["model"]["properties"]
    for name, value in FFS_BP2.items():
        assert model[name]["default"] == value, name
        assert schema["default"]["model"][name] == value
    assert schema["x_tao_schema"]["model"] == "depth-net-fast-stereo"
    fs = generate_schema("train", automl_default_parameters=["train.optim.lr", "train.optim.weight_decay"])
    assert fs["automl_default_parameters"] == ["train.optim.lr", "train.optim.weight_decay"]


def test_unknown_automl_parameter_is_rejected():
    with pytest.raises(ValueError, match="model.volume_dim"):
        generate_schema("train", automl_default_parameters=["model.volume_dim"])
    with pytest.raises(ValueError, match="unknown schema action 'prune'"):
        generate_schema("prune")


def test_skill_dir_schemas_keep_the_skills_narrowed_search(tao_skill_dir, tmp_path):
    import shutil

    from stereo.config.jsonschema import write_skill_schemas

    skill = tmp_path / "skill"
    shutil.copytree(tao_skill_dir, skill)
    written = write_skill_schemas(skill)
    assert sorted(p.name for p in written) == sorted(f"{a}.schema.json"
                                                     for a in ("train", "evaluate", "inference", "export"))
    train = json.loads((skill / "schemas" / "train.schema.json").read_text())
    assert train["automl_default_parameters"] == ["train.optim.lr", "train.optim.lr_decay"]
    assert train["properties"]["model"]["properties"]["gru_hidden"]["default"] == 60
    assert train["x_tao_schema"]["model"] == "tao-train-fast-foundation-stereo"
    assert tao_reader_problems(train) == []
