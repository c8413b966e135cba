"""automl/space/build.py: TAO-dialect schema -> SearchSpace (selection, dialect, relations, errors)."""
from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import pytest

from automl.space.param import Param
from automl.space.build import SearchSpace, SearchSpaceError, build_search_space, refusal_reason

TAO_FFS = Path(__file__).resolve().parents[2] / "fixtures" / "tao_skill_ffs" / "tao-train-fast-foundation-stereo"


@pytest.fixture(scope="session")
def tao_schema() -> dict:
    """TAO's real FFS train schema from the committed copy (tests/fixtures/tao_skill_ffs)."""
    return json.loads((TAO_FFS / "schemas" / "train.schema.json").read_text())


def _one(schema, name, override=None):
    space = build_search_space(schema, parameters=[name], overrides={name: override} if override else None)
    return space[name], space


# --- parameter selection ---------------------------------------------------------------------------
def test_tao_schema_default_is_its_automl_default_parameters(tao_schema):
    space = build_search_space(tao_schema)
    # TAO's runner would search all 45 automl_enabled fields; the schema narrows to these two
    assert space.names == ("train.optim.lr", "train.optim.lr_decay")
    assert space["train.optim.lr"] == Param.real(1e-6, 1e-2, log=True)
    assert space["train.optim.lr_decay"] == Param.real(0.0, 1.0, low_open=True)
    assert any("automl_default_parameters" in n and "TAO" in n for n in space.notes)
    assert all(cfg["train.optim.lr_decay"] > 0 for cfg in (space.sample(s) for s in range(200)))


def test_without_default_list_every_flagged_field_except_refused_ones(tao_schema):
    schema = {k: v for k, v in tao_schema.items() if k != "automl_default_parameters"}
    space = build_search_space(schema)
    assert "train.optim.weight_decay" in space and "dataset.train_dataset.augmentation.color_aug_prob" in space
    assert not any(n.startswith("model.") or ".val_dataset." in n or ".infer_dataset." in n for n in space)
    assert any(n.startswith("model.cv_group: skipped") for n in space.notes)


def test_parameters_argument_replaces_the_default_list(dialect_schema):
    space = build_search_space(dialect_schema, parameters=["train.shuffle", "train.iters"])
    assert space.names == ("train.shuffle", "train.iters")


def test_unknown_parameter_suggests_the_closest(dialect_schema):
    with pytest.raises(SearchSpaceError, match=r"'parameters.train.optim.lrr': not a field .*did you mean "
                                               r"'train.optim.lr'"):
        build_search_space(dialect_schema, parameters=["train.optim.lrr"])


def test_a_section_is_not_a_parameter(dialect_schema):
    with pytest.raises(SearchSpaceError, match="not a field of the schema"):
        build_search_space(dialect_schema, parameters=["train.optim"])


def test_automl_disabled_field_needs_an_explicit_range(dialect_schema):
    with pytest.raises(SearchSpaceError, match="automl_enabled: false; give it an explicit range"):
        build_search_space(dialect_schema, parameters=["train.optim.momentum"])
    dist, _ = _one(dialect_schema, "train.optim.momentum", {"low": 0.5, "high": 0.99})
    assert dist == Param.real(0.5, 0.99)


@pytest.mark.parametrize("name, words", [
    ("model.cv_group", "never changes the architecture of a pretrained checkpoint"),
    ("dataset.val_dataset.augmentation.color_aug_prob", "never augmented"),
])
def test_refused_fields_raise_when_asked_for(dialect_schema, name, words):
    with pytest.raises(SearchSpaceError, match=words):
        build_search_space(dialect_schema, parameters=[name])
    with pytest.raises(SearchSpaceError, match=words):
        build_search_space(dialect_schema, overrides={name: {"low": 4, "high": 8}})


def test_searchable_model_fields():
    assert refusal_reason("model.train_iters") is None and refusal_reason("model.hidden_dims")
    assert refusal_reason("dataset.train_dataset.augmentation.color_aug_prob") is None


def test_overrides_opt_in_on_top_of_the_default_list(dialect_schema):
    space = build_search_space(dialect_schema, overrides={"train.shuffle": {"distribution": "bool"}})
    assert space.names == ("train.optim.lr", "train.optim.lr_decay", "train.shuffle")


def test_duplicates_and_empty_lists_raise(dialect_schema):
    with pytest.raises(SearchSpaceError, match="listed twice"):
        build_search_space(dialect_schema, parameters=["train.optim.lr", "train.optim.lr"])
    with pytest.raises(SearchSpaceError, match="nothing left to search"):
        build_search_space(dialect_schema, parameters=[])


def test_schema_without_properties_raises():
    with pytest.raises(SearchSpaceError, match="no top-level 'properties'"):
        build_search_space({"type": "object"})


# --- dialect ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, expected", [
    ("train.optim.lr", Param.real(1e-6, 1e-2, log=True)),                   # scale name -> log-uniform
    ("train.optim.min_lr", Param.real(1e-8, 1e-3, log=True)),               # "TRUE" string flag, *_lr
    ("train.optim.lr_decay", Param.real(0.0, 1.0, low_open=True)),          # "> 0.0": (0, 1]
    ("train.scale", Param.real(0.5, 8.0, log=True, low_open=True)),          # exclusiveMinimum + log_scale
    ("train.batch_size", Param.power_of(2, 1, 64)),                           # "^ 2"
    ("train.crop", Param.integer(128, 672, step=32)),                             # "/ 32", bounds rounded inwards
    ("train.iters", Param.categorical((4, 8, 16), (1.0, 2.0, 1.0), ordered=True)),
    ("train.optim.optimizer", Param.categorical(("AdamW", "SGD"), (3.0, 1.0))),
    ("train.shuffle", Param.boolean()),
    ("model.train_iters", Param.integer(1, 32)),
])
def test_dialect(dialect_schema, name, expected):
    schema = copy.deepcopy(dialect_schema)
    schema["properties"]["train"]["properties"]["scale"]["exclusiveMinimum"] = 0.5
    assert _one(schema, name)[0] == expected


def test_unbounded_fields_fall_back_to_default_times_ten_and_say_so(dialect_schema):
    space = build_search_space(dialect_schema, parameters=["train.clip_grad_norm", "train.steps", "train.warmup"])
    assert space["train.clip_grad_norm"] == Param.real(0.0, 1.0, low_open=True)
    assert space["train.steps"] == Param.integer(1, 10000)
    assert space["train.warmup"] == Param.real(0.0, 50.0)  # log_scale: false wins over any name rule
    assert sum("TAO's rule" in n for n in space.notes) == 3


def test_unbounded_field_without_positive_default_asks_for_a_range(dialect_schema):
    dialect_schema["properties"]["train"]["properties"]["clip_grad_norm"]["default"] = 0.0
    with pytest.raises(SearchSpaceError, match="no finite maximum .* set 'high' in the search-space file"):
        build_search_space(dialect_schema, parameters=["train.clip_grad_norm"])


def test_scale_parameter_starting_at_zero_is_uniform_with_a_note(dialect_schema):
    dist, space = _one(dialect_schema, "train.optim.weight_decay")
    assert dist == Param.real(0.0, 1e-2)
    assert any("sampled uniformly" in n for n in space.notes)
    dist, _ = _one(dialect_schema, "train.optim.weight_decay", {"low": 1e-6})
    assert dist == Param.real(1e-6, 1e-2, log=True)


@pytest.mark.parametrize("name", ["train.optim.lr_steps", "train.name"])
def test_unsearchable_types_raise(dialect_schema, name):
    with pytest.raises(SearchSpaceError, match="cannot be searched"):
        build_search_space(dialect_schema, parameters=[name])


def test_bad_math_cond_names_the_parameter(dialect_schema):
    dialect_schema["properties"]["train"]["properties"]["crop"]["math_cond"] = "~ 3"
    with pytest.raises(SearchSpaceError, match=r"'parameters.train.crop': math_cond '~ 3' is not understood"):
        build_search_space(dialect_schema, parameters=["train.crop"])


# --- overrides -------------------------------------------------------------------------------------
def test_override_narrows_and_keeps_the_open_end(dialect_schema):
    assert _one(dialect_schema, "train.optim.lr", {"distribution": "log_uniform", "low": 1e-6, "high": 1e-3})[0] \
        == Param.real(1e-6, 1e-3, log=True)
    assert _one(dialect_schema, "train.optim.lr_decay", {"low": 0.0, "high": 0.5})[0] \
        == Param.real(0.0, 0.5, low_open=True)
    assert _one(dialect_schema, "train.optim.lr", {"distribution": "uniform"})[0] == Param.real(1e-6, 1e-2)


def test_override_choices_keep_their_schema_weights(dialect_schema):
    assert _one(dialect_schema, "train.iters", {"choices": [16, 4]})[0] == \
        Param.categorical((16, 4), (1.0, 1.0), ordered=True)
    assert _one(dialect_schema, "train.crop", {"choices": [128, 256]})[0] == \
        Param.categorical((128, 256), ordered=True)


@pytest.mark.parametrize("name, override, words", [
    ("train.optim.lr", {"low": 1e-7}, r"'parameters.train.optim.lr'.low: 1e-07 is outside the schema range"),
    ("train.optim.lr", {"hihg": 1e-3}, r"unknown key 'hihg' \(did you mean 'high'\?\)"),
    ("train.optim.lr", {"low": "tiny"}, r".low: expected a finite number"),
    ("train.optim.lr", {"distribution": "loguniform"}, r"did you mean 'log_uniform'"),
    ("train.optim.lr", {"distribution": "power_of"}, r"does not fit a float field"),
    ("train.optim.lr", {"low": 1e-3, "high": 1e-4}, r"`low <= high` must hold"),
    ("train.optim.lr_decay", {"distribution": "log_uniform"}, r"log-uniform sampling needs low > 0"),
    ("train.optim.optimizer", {"choices": ["Adam"]}, r".choices: 'Adam' is not in the schema enum"),
    ("train.optim.optimizer", {"low": 1}, r".low: does not apply to a categorical distribution"),
    ("train.iters", {"choices": [4, 8], "weights": [1]}, r"`len\(weights\) == len\(choices\)` must hold"),
    ("train.crop", {"low": 100.5}, r"is an integer field"),
    ("train.crop", {"choices": [64]}, r"outside the schema range"),
    ("train.steps", {"weights": [1]}, r".weights: does not apply to a int distribution"),
    ("train.optim.lr", {"base": 2}, r".base: only the power_of distribution takes a base"),
])
def test_override_errors_name_the_key(dialect_schema, name, override, words):
    with pytest.raises(SearchSpaceError, match=words):
        build_search_space(dialect_schema, parameters=[name], overrides={name: override})


def test_default_outside_the_narrowed_space_is_noted(dialect_schema):
    _, space = _one(dialect_schema, "train.optim.lr_decay", {"low": 0.5})
    assert any("default 0.1 lies outside" in n for n in space.notes)


# --- depends_on ------------------------------------------------------------------------------------
def test_depends_on_orders_parents_first_and_holds_in_every_sample(dialect_schema):
    space = build_search_space(dialect_schema, parameters=["train.optim.max_lr", "train.optim.lr"])
    assert space.names == ("train.optim.lr", "train.optim.max_lr")
    for seed in range(100):
        cfg = space.sample(seed)
        assert cfg["train.optim.max_lr"] > cfg["train.optim.lr"]
        assert space.contains(cfg)
    assert space.to_dict()["parameters"]["train.optim.max_lr"]["depends_on"] == ["> train.optim.lr"]
    assert space.conditioned("train.optim.max_lr", {"train.optim.lr": 5e-3}).low == 5e-3


def test_depends_on_unsearched_parent_uses_its_default(dialect_schema):
    space = build_search_space(dialect_schema, parameters=["train.optim.max_lr"])
    assert space["train.optim.max_lr"] == Param.real(1e-4, 1e-2, log=True, low_open=True)
    assert "train.optim.max_lr: '> train.optim.lr' applied with train.optim.lr fixed at 0.0001 (its default)" \
        in space.notes


def test_depends_on_cycle_and_bad_relation_raise(dialect_schema):
    overrides = {"train.optim.lr": {"depends_on": "> train.optim.max_lr"}}
    with pytest.raises(SearchSpaceError, match="form a cycle"):
        build_search_space(dialect_schema, parameters=["train.optim.lr", "train.optim.max_lr"], overrides=overrides)
    with pytest.raises(SearchSpaceError, match=r"depends_on: 'train.optim.lr' names no relation"):
        build_search_space(dialect_schema, parameters=["train.optim.max_lr"],
                           overrides={"train.optim.max_lr": {"depends_on": "train.optim.lr"}})
    with pytest.raises(SearchSpaceError, match="needs a numeric parameter"):
        build_search_space(dialect_schema, parameters=["train.shuffle"],
                           overrides={"train.shuffle": {"depends_on": "> train.optim.lr"}})


def test_problems_explain_why_a_config_is_not_in_the_space(dialect_schema):
    space = build_search_space(dialect_schema, parameters=["train.optim.lr", "train.optim.max_lr"])
    problems = space.problems({"train.optim.lr": 5e-3, "train.optim.max_lr": 1e-3, "train.optim.lrr": 1})
    assert any("violates 'train.optim.max_lr > train.optim.lr'" in p for p in problems)
    assert any("'train.optim.lrr' is not searched here (did you mean 'train.optim.lr'?)" in p for p in problems)
    assert space.problems({"train.optim.lr": 0.5}) == ["'train.optim.max_lr' is missing",
                                                     "'train.optim.lr' = 0.5 is outside " +
                                                     str(space["train.optim.lr"].to_dict())]


def test_search_space_is_frozen_and_checks_its_order():
    space = SearchSpace({"a": Param.real(0.0, 1.0)})
    with pytest.raises(TypeError):
        space.params["b"] = Param.real(0.0, 1.0)
    from automl.space.relations import Relation
    with pytest.raises(SearchSpaceError, match="must be a searched parameter listed before it"):
        SearchSpace({"b": Param.real(0.0, 1.0), "a": Param.real(0.0, 1.0)}, {"b": (Relation(">", "a"),)})


def test_sampling_is_reproducible_and_pickles(dialect_schema):
    space = build_search_space(dialect_schema, parameters=["train.optim.lr", "train.batch_size", "train.iters"])
    assert space.sample(3) == space.sample(3) != space.sample(4)
    again = pickle.loads(pickle.dumps(space))  # Ray's OptunaSearch pickles the define-by-run space
    assert again == space and again.sample(3) == space.sample(3)


def test_depends_on_tao_math_cond_spelling_is_the_same_relation(dialect_schema):
    optim = dialect_schema["properties"]["train"]["properties"]["optim"]["properties"]
    optim["max_lr"].update(depends_on="train.optim.lr", math_cond="> depends_on")
    space = build_search_space(dialect_schema, parameters=["train.optim.max_lr", "train.optim.lr"])
    assert space.to_dict()["parameters"]["train.optim.max_lr"]["depends_on"] == ["> train.optim.lr"]
    assert all(c["train.optim.max_lr"] > c["train.optim.lr"] for c in (space.sample(s) for s in range(50)))


def test_depends_on_without_a_relation_in_a_tao_schema_only_orders(dialect_schema):
    dialect_schema["properties"]["train"]["properties"]["steps"]["depends_on"] = "train.batch_size"
    space = build_search_space(dialect_schema, parameters=["train.steps"])
    assert space["train.steps"] == Param.integer(1, 10000) and not space.relations
    assert any("depends_on 'train.batch_size' with math_cond None carries no relation" in n for n in space.notes)


# --- depends_on + math_cond "/ k": the derived value parent // k (TAO's third form) ------------------
def _with_groups(schema, **leaf):
    schema = copy.deepcopy(schema)
    schema["properties"]["train"]["properties"]["groups"] = {
        "type": "int", "default": 10, "minimum": 1, "maximum": 32, "depends_on": "train.crop", "math_cond": "/ 32",
        "automl_enabled": True, **leaf}
    return schema


def test_derived_parameter_is_parent_floor_divided_by_k(dialect_schema):
    space = build_search_space(_with_groups(dialect_schema), parameters=["train.groups", "train.crop"])
    assert space.names == ("train.crop", "train.groups")  # the parent is drawn first
    assert space["train.crop"] == Param.integer(128, 672, step=32) and space["train.groups"] == Param.integer(4, 21)
    for seed in range(100):
        cfg = space.sample(seed)
        assert cfg["train.groups"] == cfg["train.crop"] // 32 and space.contains(cfg)
    assert space.conditioned("train.groups", {"train.crop": 640}) == Param.integer(20, 20)
    assert space.to_dict()["parameters"]["train.groups"]["depends_on"] == ["= train.crop // 32"]
    assert any(p.startswith("'train.groups' = 5 violates 'train.groups = train.crop // 32'")
               for p in space.problems({"train.crop": 128, "train.groups": 5}))
    assert any("derived, train.groups = train.crop // 32" in n for n in space.notes)


@pytest.mark.parametrize("fixed, known, value, source", [
    (None, None, 10, "its default"),                       # crop's schema default 320
    (None, {"train.crop": 640}, 20, "the base spec"),
    ({"train.crop": "512"}, {"train.crop": 640}, 16, "your override"),
])
def test_derived_parameter_of_an_unsearched_parent_is_one_value(dialect_schema, fixed, known, value, source):
    space = build_search_space(_with_groups(dialect_schema), parameters=["train.groups"], fixed=fixed, known=known)
    assert space["train.groups"] == Param.integer(value, value) and not space.relations
    assert space.sample(0) == {"train.groups": value}
    assert any(f"train.crop is fixed at {value * 32} ({source})" in n for n in space.notes), space.notes


@pytest.mark.parametrize("leaf, override, words", [
    ({"maximum": 8}, None, r"train.groups = train.crop // 32 spans \[4, 21\] for train.crop in \[128, 672\], "
                           r"outside train.groups's schema range \[1, 8\]; narrow the range of train.crop"),
    ({"type": "float"}, None, "makes train.groups = train.crop // 32, which needs an int field"),
    ({}, {"low": 2}, r"'parameters.train.groups'.low: train.groups is derived .* remove 'low'"),
    ({"depends_on": "train.optim.lr"}, None, "divides an integer, but parent 'train.optim.lr' is float"),
    ({"math_cond": "/ 0"}, None, "needs an integer k >= 1"),
])
def test_derived_parameter_errors_name_the_key(dialect_schema, leaf, override, words):
    schema = _with_groups(dialect_schema, **leaf)
    parents = ["train.optim.lr"] if leaf.get("depends_on") else ["train.crop"]
    with pytest.raises(SearchSpaceError, match=words):
        build_search_space(schema, parameters=parents + ["train.groups"],
                           overrides={"train.groups": override} if override else None)


# --- keys the user fixed on the command line -------------------------------------------------------
def test_fixed_keys_leave_the_space_and_say_so(dialect_schema):
    space = build_search_space(dialect_schema, fixed={"train.optim.lr": "5e-4"})
    assert space.names == ("train.optim.lr_decay",)
    assert "train.optim.lr fixed at 5e-4 by your override; not searched" in space.notes
    with pytest.raises(SearchSpaceError, match=r"nothing left to search: your overrides fix every parameter "
                                               r"\(train.optim.lr, train.optim.lr_decay\)"):
        build_search_space(dialect_schema, fixed={"train.optim.lr": "5e-4", "train.optim.lr_decay": "0.5"})


def test_a_fixed_parent_bounds_its_child_with_the_users_value(dialect_schema):
    space = build_search_space(dialect_schema, parameters=["train.optim.lr", "train.optim.max_lr"],
                               fixed={"train.optim.lr": "5e-4"})
    assert space["train.optim.max_lr"] == Param.real(5e-4, 1e-2, log=True, low_open=True)
    assert any("train.optim.lr fixed at 0.0005 (your override)" in n for n in space.notes)


def test_a_fixed_child_narrows_its_searched_parent(dialect_schema):
    space = build_search_space(dialect_schema, parameters=["train.optim.lr", "train.optim.max_lr"],
                               fixed={"train.optim.max_lr": "1e-3"})
    assert space["train.optim.lr"] == Param.real(1e-6, 1e-3, log=True, high_open=True)
    assert "train.optim.lr: narrowed to keep 'train.optim.max_lr > train.optim.lr' with train.optim.max_lr fixed " \
           "at 1e-3" in space.notes
    with pytest.raises(SearchSpaceError, match="leaves no value of train.optim.lr to search"):
        build_search_space(dialect_schema, parameters=["train.optim.lr", "train.optim.max_lr"],
                           fixed={"train.optim.max_lr": "1e-7"})
    derived = build_search_space(_with_groups(dialect_schema), parameters=["train.crop", "train.groups"],
                                 fixed={"train.groups": 10})
    assert derived["train.crop"] == Param.integer(320, 320, step=32)  # 320 // 32 == 10, the only multiple of 32 left
