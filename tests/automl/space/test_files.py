"""automl/space/files.py: search_spaces/*.yaml parse into validated search spaces; errors name keys."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from automl.space.param import Param
from automl.space.files import (SEARCH_SPACES_ROOT, default_search_space_name, list_search_spaces,
                                      load_search_space, parse_search_space, search_space_path)
from automl.plan.skills import find_skill, load_skill
from automl.space.build import SearchSpaceError

REPO = Path(__file__).resolve().parents[3]
TAO_FFS = Path(__file__).resolve().parents[2] / "fixtures" / "tao_skill_ffs" / "tao-train-fast-foundation-stereo"


@pytest.fixture(scope="session")
def tao_skill_dir() -> Path:
    """TAO's real FFS skill from the committed copy (tests/fixtures/tao_skill_ffs): runs on a clean clone."""
    return TAO_FFS


@pytest.fixture(scope="session")
def tao_schema() -> dict:
    return json.loads((TAO_FFS / "schemas" / "train.schema.json").read_text())

SHIPPED = {"fast_foundation_stereo": ("train.optim.lr", "train.optim.lr_decay"),
           "foundation_stereo": ("train.optim.lr", "train.optim.weight_decay"),
           "tiny_demo": ("train.optim.lr", "train.optim.lr_decay")}


@pytest.mark.parametrize("name, expected", sorted(SHIPPED.items()))
def test_shipped_search_spaces_fit_the_tao_schema(tao_schema, name, expected):
    parsed = load_search_space(search_space_path(name), tao_schema)
    assert parsed.space.names == expected and (parsed.metric, parsed.mode) == ("val/epe", "min")
    assert all(parsed.space[n].log for n in expected if not n.endswith("lr_decay"))
    assert parsed.model == name.replace("_", "-") and parsed.path == SEARCH_SPACES_ROOT / f"{name}.yaml"


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_search_spaces_fit_our_generated_schema(name):
    ours = REPO / "schemas" / "train.schema.json"
    if not ours.is_file():
        pytest.skip("schemas/train.schema.json not generated yet (python -m stereo.config.jsonschema)")
    assert load_search_space(search_space_path(name), json.loads(ours.read_text())).space.names == SHIPPED[name]


def test_ffs_lr_decay_is_never_zero(tao_schema):
    space = load_search_space(search_space_path("fast_foundation_stereo"), tao_schema).space
    assert space["train.optim.lr"] == Param.real(1e-6, 1e-3, log=True)
    assert space["train.optim.lr_decay"] == Param.real(0.0, 1.0, low_open=True)


def test_every_shipped_skill_finds_its_search_space():
    assert [default_search_space_name(find_skill(n.replace("_", "-"))) for n in sorted(SHIPPED)] == sorted(SHIPPED)
    assert list_search_spaces() == sorted(SHIPPED)


def test_tao_skill_finds_ours_through_its_model_type(tao_skill_dir):
    assert default_search_space_name(load_skill(tao_skill_dir)) == "fast_foundation_stereo"


def _doc(**parameters):
    return {"metric": "val/epe", "mode": "min", "parameters": parameters}


def test_parse_minimal_document_and_yaml_1_1_floats(dialect_schema):
    text = "metric: val/epe\nmode: min\nparameters:\n  train.optim.lr: {low: 1e-5, high: 1e-3}\n  train.shuffle:\n"
    parsed = parse_search_space(yaml.safe_load(text), dialect_schema)
    assert parsed.space["train.optim.lr"] == Param.real(1e-5, 1e-3, log=True)  # "1e-5" is a str in YAML 1.1
    assert parsed.space.names == ("train.optim.lr", "train.shuffle") and parsed.to_dict()["metric"] == "val/epe"


@pytest.mark.parametrize("doc, words", [
    ([1, 2], "expected a YAML mapping"),
    ({**_doc(**{"train.optim.lr": {}}), "metrc": "x"}, r"unknown key 'metrc' \(did you mean 'metric'\?\)"),
    ({"mode": "min", "parameters": {"train.optim.lr": {}}}, "key 'metric': expected the objective's name"),
    ({**_doc(**{"train.optim.lr": {}}), "mode": "minimize"}, "key 'mode': 'minimize' is not one of min, max"),
    ({"metric": "val/epe", "mode": "min"}, "key 'parameters': expected a non-empty mapping"),
    (_doc(**{"train.optim.lr": [1e-6, 1e-3]}), "key 'parameters.train.optim.lr': expected a mapping"),
    (_doc(**{"train.optim.lr": {"low": 1e-9}}), r"'parameters.train.optim.lr'.low: 1e-09 is outside the schema"),
    (_doc(**{"train.optim.lrr": {}}), r"did you mean 'train.optim.lr'"),
    (_doc(**{"model.cv_group": {"low": 4, "high": 8}}), "never changes the architecture of a pretrained checkpoint"),
    (_doc(**{"train.optim.optimizer": {"choices": ["Adam"]}}), "'Adam' is not in the schema enum"),
    (_doc(**{"train.optim.momentum": {}}), "automl_enabled: false; give it an explicit range"),
])
def test_bad_documents_name_the_origin_and_key(dialect_schema, doc, words):
    with pytest.raises(SearchSpaceError) as err:
        parse_search_space(doc, dialect_schema, origin="spaces/x.yaml")
    assert str(err.value).startswith("spaces/x.yaml") and re.search(words, str(err.value)), err.value


@pytest.mark.parametrize("field", ["hidden_dims", "volume_dim", "gru_hidden", "max_disparity", "encoder"])
def test_architecture_fields_are_refused_even_when_the_schema_has_them(dialect_schema, field):
    dialect_schema["properties"]["model"]["properties"][field] = {"type": "int", "default": 1, "minimum": 1,
                                                                  "maximum": 9, "automl_enabled": True}
    with pytest.raises(SearchSpaceError, match=rf"'parameters.model.{field}'.*pretrained checkpoint"):
        parse_search_space(_doc(**{f"model.{field}": {"low": 1, "high": 4}}), dialect_schema)


def test_load_errors(tmp_path, dialect_schema):
    with pytest.raises(SearchSpaceError, match="search-space file not found; available: fast_foundation_stereo"):
        load_search_space(tmp_path / "nope.yaml", dialect_schema)
    bad = tmp_path / "bad.yaml"
    bad.write_text("parameters: [unclosed\n")
    with pytest.raises(SearchSpaceError, match="not valid YAML"):
        load_search_space(bad, dialect_schema)
    with pytest.raises(SearchSpaceError, match=r"no search space 'fast_foundation_stero'.*did you mean "
                                               r"'fast_foundation_stereo'"):
        search_space_path("fast-foundation-stero")
    assert search_space_path("Tiny-Demo") == SEARCH_SPACES_ROOT / "tiny_demo.yaml"
