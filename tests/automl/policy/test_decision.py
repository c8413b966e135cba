"""automl/policy/decision.py: every routing rule as one table row, phrase detection, and the real TAO skill."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from automl.errors import LaunchError
from automl.policy.decision import (REGENERATE_COMMAND, TRAIN_SCHEMA, TRAIN_TEMPLATE, NothingToSearch, PolicyDecision,
                                    SkillFacts, resolve_policy)
from automl.policy.request import read_request
from automl.plan.skills import load_skill

TAO_FFS = Path(__file__).resolve().parents[2] / "fixtures" / "tao_skill_ffs" / "tao-train-fast-foundation-stereo"


@pytest.fixture(scope="session")
def tao_skill_dir() -> Path:
    """TAO's real FFS skill from the committed copy (tests/fixtures/tao_skill_ffs): runs on a clean clone."""
    return TAO_FFS

READY = SkillFacts("ffs", automl_enabled=True, has_train_schema=True, has_train_template=True, skill_dir="/s/ffs")
NO_SCHEMA = dataclasses.replace(READY, has_train_schema=False)
NO_TEMPLATE = dataclasses.replace(READY, has_train_template=False)
NOTHING = dataclasses.replace(READY, has_train_schema=False, has_train_template=False)
DISABLED = dataclasses.replace(READY, automl_enabled=False)
NOT_RUNNABLE = "AutoML is enabled for ffs but not runnable until schemas are generated (missing: {})"
TAO_FFS_FACTS = load_skill(TAO_FFS).facts()  # the real TAO FFS skill directory, unchanged

# action, skill, --policy, request -> mode, policy_used, a reason that must be present, missing files
TABLE = [
    ("train", READY, None, None, "sweep", "auto", "policy auto (the default)", ()),
    ("train", TAO_FFS_FACTS, None, None, "sweep", "auto", "AutoML is enabled for tao-train-fast-foundation-stereo "
     "and both schemas/train.schema.json and references/spec_template_train.yaml are present: sweep", ()),
    ("train", TAO_FFS_FACTS, None, "plain training", "plain", "off", 'the request says "plain training"', ()),
    ("evaluate", TAO_FFS_FACTS, "on", None, "plain", "on", "action 'evaluate' never routes to AutoML", ()),
    ("train", READY, "auto", None, "sweep", "auto", "--policy auto given explicitly", ()),
    ("train", READY, "on", None, "sweep", "on", "both schemas/train.schema.json and", ()),
    ("train", READY, "ON", None, "sweep", "on", "--policy on given explicitly", ()),
    ("train", READY, "off", None, "plain", "off", "AutoML is off: one plain training run", ()),
    ("train", READY, None, "please turn off AutoML", "plain", "off", 'the request says "turn off automl"', ()),
    ("train", READY, "on", "no HPO please", "sweep", "on", "--policy on given explicitly", ()),  # flag wins
    ("train", READY, "auto", "plain training", "sweep", "auto", "--policy auto given explicitly", ()),
    ("train", READY, None, "don't turn off AutoML", "sweep", "auto", "a negation", ()),
    ("train", READY, None, "enable AutoML", "sweep", "on", 'the request says "enable automl"', ()),
    ("train", READY, None, "automl_policy: on", "sweep", "on", 'the request sets "automl policy on"', ()),
    ("train", READY, None, "is plain training better?", "sweep", "auto", "in a question, not as a request", ()),
    ("train", DISABLED, None, "enable AutoML", "plain", "on", "trains plainly although the request asks for it", ()),
    ("train", NO_TEMPLATE, None, "automl_policy=on", "plain", "on", NOT_RUNNABLE.format(TRAIN_TEMPLATE),
     (TRAIN_TEMPLATE,)),
    ("train", NO_SCHEMA, None, None, "plain", "auto", NOT_RUNNABLE.format(TRAIN_SCHEMA), (TRAIN_SCHEMA,)),
    ("train", NO_SCHEMA, "on", None, "plain", "on", NOT_RUNNABLE.format(TRAIN_SCHEMA), (TRAIN_SCHEMA,)),
    ("train", NO_TEMPLATE, "auto", None, "plain", "auto", NOT_RUNNABLE.format(TRAIN_TEMPLATE), (TRAIN_TEMPLATE,)),
    ("train", NOTHING, None, None, "plain", "auto", NOT_RUNNABLE.format(f"{TRAIN_SCHEMA}, {TRAIN_TEMPLATE}"),
     (TRAIN_SCHEMA, TRAIN_TEMPLATE)),
    ("train", NO_SCHEMA, "off", None, "plain", "off", "AutoML is off", ()),
    ("train", DISABLED, None, None, "plain", "auto", "automl_enabled: false", ()),
    ("train", DISABLED, "on", None, "plain", "on", "automl_enabled: false in references/skill_info.yaml, so it "
     "trains plainly although --policy on was given", ()),
    ("evaluate", READY, "on", None, "plain", "on", "action 'evaluate' never routes to AutoML", ()),
    ("export", READY, None, None, "plain", "auto", "only 'train' can sweep", ()),
    ("inference", NOTHING, None, None, "plain", "auto", "never routes to AutoML", ()),
]


@pytest.mark.parametrize("action, skill, policy, request_text, mode, used, reason, missing", TABLE)
def test_policy_table(action, skill, policy, request_text, mode, used, reason, missing):
    decision = resolve_policy(action=action, skill=skill, policy=policy, request=request_text)
    assert (decision.mode, decision.policy_used, decision.missing) == (mode, used, missing)
    assert any(reason in r for r in decision.reasons), decision.reasons
    if missing:
        assert decision.regenerate_command == REGENERATE_COMMAND.format(skill_dir="/s/ffs")
        assert decision.regenerate_command == "python -m stereo.config.jsonschema --skill-dir /s/ffs"
    else:
        assert decision.regenerate_command is None


def test_not_runnable_message_is_exact():
    decision = resolve_policy(action="train", skill=NO_SCHEMA, policy=None, request=None)
    assert decision.reasons[1] == ("AutoML is enabled for ffs but not runnable until schemas are generated "
                                   "(missing: schemas/train.schema.json)")
    assert "fix: python -m stereo.config.jsonschema --skill-dir /s/ffs" in decision.explain()


def test_decision_is_frozen_and_serialisable():
    decision = resolve_policy(action="train", skill=READY, policy=None, request=None)
    assert isinstance(decision, PolicyDecision) and decision.sweep
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.mode = "plain"
    assert decision.to_dict()["mode"] == "sweep" and isinstance(decision.reasons, tuple)


def test_unknown_policy_raises_with_the_choices():
    with pytest.raises(ValueError, match="--policy 'maybe' is not one of auto, on, off"):
        resolve_policy(action="train", skill=READY, policy="maybe", request=None)


OFF = [
    # the phrases, then close variants
    "turn off AutoML", "disable AutoML", "no HPO", "plain training",
    "automl_policy: off", "automl_policy=off", "AUTOML_POLICY: OFF", "--policy off", "AutoML should be off",
    "no need for automl", "skip tuning", "no tuning", "don't tune", "without hyperparameter search",
    "Turn OFF auto-ML!", "disable the automl sweep", "No hyper-parameter search, thanks.", "just plain train please",
    "without automl", "w/o AutoML", "skip hpo", "Skip the sweep", "no sweep", "AutoML off", "automl: off",
    "AutoML=off", "switch the AutoML off", "turn automl off", "I don't want AutoML", "do not run a sweep",
    "Don't use auto ml for this one", "train plainly on my data", "HPO disabled", "I want AutoML off for this run",
    "don't turn off automl, actually no: turn off automl", "Keep it simple, no HPO", "please, no HPO",
    "no hyperparameter tuning", "we don't need AutoML", "don't enable AutoML", "never enable HPO",
    "Could you turn off AutoML?", "use plain training instead of AutoML", "plain fine-tuning please",
    "turn off AutoML. Is plain training better?",
]
NOT_OFF = [
    # questions and comparisons mention plain training without asking for it
    "is plain training better?", "compare with plain training", "run AutoML then plain training for comparison",
    "Plain training vs. AutoML: which wins?", "should I turn off AutoML?",
    # negations
    "don't turn off AutoML", "Please do not disable automl.", "never disable HPO", "No, don't skip HPO",
    "run with AutoML, not plain training", "no need to disable the sweep", "AutoML should not be off",
    "turn off AutoML. Actually, don't turn off AutoML",
    # nothing about AutoML
    "train FFS on my KITTI data", "run automl with 10 trials", "", "nothing about tuning here",
    "turn off the lights", "fine-tuning on KITTI", "no fine-tuning tricks",
]
ON = ["turn on AutoML", "enable AutoML", "automl_policy: on", "automl_policy=on", "Enable HPO please",
      "switch the sweep on", "AutoML on", "AutoML enabled", "turn off AutoML, then enable it again: enable AutoML"]


@pytest.mark.parametrize("request_text", OFF)
def test_off_phrases(request_text):
    reading = read_request(request_text)
    assert reading.policy == "off" and reading.phrase, (request_text, reading)
    decision = resolve_policy(action="train", skill=READY, policy=None, request=request_text)
    assert (decision.mode, decision.policy_used) == ("plain", "off")
    assert reading.reason == decision.reasons[0] and reading.phrase in decision.reasons[0]


@pytest.mark.parametrize("request_text", NOT_OFF)
def test_not_off_phrases(request_text):
    assert read_request(request_text).policy in (None, "auto")
    decision = resolve_policy(action="train", skill=READY, policy=None, request=request_text)
    assert (decision.mode, decision.policy_used) == ("sweep", "auto"), decision.reasons


@pytest.mark.parametrize("request_text", ON)
def test_on_phrases(request_text):
    assert read_request(request_text).policy == "on", read_request(request_text)
    decision = resolve_policy(action="train", skill=READY, policy=None, request=request_text)
    assert (decision.mode, decision.policy_used) == ("sweep", "on")


@pytest.mark.parametrize("request_text, reason", [
    ("is plain training better?", 'the request mentions "plain training" in a question, not as a request'),
    ("compare with plain training", 'the request mentions "plain training" in a comparison, not as a request'),
    ("don't turn off AutoML", 'the request says "do not turn off automl" (a negation, not a request'),
    ("automl_policy: auto", 'the request sets "automl policy auto", so the policy is auto'),
    ("train FFS on KITTI", "no --policy and no AutoML phrase in the request: policy auto (the default)"),
])
def test_request_reasons_say_what_was_read(request_text, reason):
    decision = resolve_policy(action="train", skill=READY, policy=None, request=request_text)
    assert decision.policy_used == "auto" and reason in decision.reasons[0], decision.reasons


def test_an_explicit_policy_beats_every_request_phrase():
    for text in OFF + ON:
        assert resolve_policy(action="train", skill=READY, policy="auto", request=text).policy_used == "auto"


# --- rule 4: a sweep needs something to search -----------------------------------------------------
EMPTY = NothingToSearch("your overrides fix every searched parameter", "train.optim.lr fixed at 0.001",
                        plain="with your values")


def test_nothing_to_search_is_plain_with_auto_and_decided_once():
    decision = resolve_policy(action="train", skill=READY, policy="auto", request=None, nothing_to_search=lambda: EMPTY)
    assert decision.mode == "plain" and not decision.sweep
    assert decision.reasons[-1] == ("your overrides fix every searched parameter (train.optim.lr fixed at 0.001), so "
                                    "there is nothing to search: one plain training run with your values")
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.mode = "sweep"  # nothing downstream can rewrite the route
    assert PolicyDecision.from_dict(decision.to_dict()) == decision


def test_nothing_to_search_with_policy_on_is_bad_input():
    with pytest.raises(LaunchError, match=r"AutoML is on, but your overrides fix every searched parameter "
                                          r"\(train.optim.lr fixed at 0.001\), so there is nothing to search; "
                                          r"drop one"):
        resolve_policy(action="train", skill=READY, policy="on", request=None, nothing_to_search=lambda: EMPTY)
    assert LaunchError.exit_code == 2


@pytest.mark.parametrize("policy, skill", [("off", READY), ("auto", NO_SCHEMA), ("auto", DISABLED)])
def test_the_search_space_is_examined_only_for_a_would_be_sweep(policy, skill):
    def examine():
        raise AssertionError("examined the search space of a run that cannot sweep")

    assert resolve_policy(action="train", skill=skill, policy=policy, request=None,
                          nothing_to_search=examine).mode == "plain"
    assert resolve_policy(action="train", skill=READY, policy="auto", request=None,
                          nothing_to_search=lambda: None).mode == "sweep"


# --- the real TAO skill, and copies of it with files removed ---------------------------------------
def test_tao_ffs_skill_sweeps(tao_skill_dir):
    decision = resolve_policy(action="train", skill=load_skill(tao_skill_dir).facts(), policy=None, request=None)
    assert decision.mode == "sweep" and decision.missing == ()


@pytest.mark.parametrize("remove, missing", [
    ("schemas/train.schema.json", ("schemas/train.schema.json",)),
    ("references/spec_template_train.yaml", ("references/spec_template_train.yaml",)),
])
def test_tao_ffs_skill_copy_with_a_file_removed_trains_plainly(tao_skill_copy, remove, missing):
    (tao_skill_copy / remove).unlink()
    facts = load_skill(tao_skill_copy).facts()
    decision = resolve_policy(action="train", skill=facts, policy="on", request=None)
    assert (decision.mode, decision.missing) == ("plain", missing)
    assert (f"AutoML is enabled for tao-train-fast-foundation-stereo but not runnable until schemas are "
            f"generated (missing: {missing[0]})") in decision.reasons
    assert decision.regenerate_command == f"python -m stereo.config.jsonschema --skill-dir {tao_skill_copy}"


def test_tao_ffs_skill_copy_with_automl_disabled_trains_plainly(tao_skill_copy):
    info = tao_skill_copy / "references" / "skill_info.yaml"
    info.write_text(info.read_text().replace("automl_enabled: true", "automl_enabled: false"))
    decision = resolve_policy(action="train", skill=load_skill(tao_skill_copy).facts(), policy=None, request=None)
    assert decision.mode == "plain" and "automl_enabled: false" in decision.reasons[1]


def test_pure_modules_import_no_heavy_frameworks():
    code = ("import sys, automl.policy.decision, automl.policy.request, automl.plan.skills, automl.plan.configs, "
            "automl.space.build, automl.space.files; "
            "heavy = {'torch', 'ray', 'optuna', 'mlflow'} & set(sys.modules); "
            "sys.exit(f'imported {sorted(heavy)}' if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr or result.stdout
