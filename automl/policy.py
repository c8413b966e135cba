"""Should this run be a sweep or one plain training run?  A pure function with its reasons.

Mirrors the routing rule of TAO's stereo skills (docs/automl.md "Policy"):

1. only ``train`` ever sweeps;
2. an explicit ``--policy auto|on|off`` wins; otherwise phrases in the user's request such as "turn off
   AutoML", "no HPO" or "plain training" mean ``off`` (negations like "don't turn off AutoML" do not);
   otherwise ``auto``;
3. ``off`` -> plain; ``auto``/``on`` -> sweep only when the skill has ``automl_enabled: true`` *and* ships
   both ``schemas/train.schema.json`` and ``references/spec_template_train.yaml``. When it does not, the
   run trains plainly and the decision says why (and how to generate what is missing).

No I/O here: the caller passes :class:`SkillFacts` (``Skill.facts()`` builds them from a skill directory).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Tuple

POLICIES = ("auto", "on", "off")
SWEEP_ACTION = "train"
TRAIN_SCHEMA = "schemas/train.schema.json"
TRAIN_TEMPLATE = "references/spec_template_train.yaml"
#: the schema generator (stereo/config/jsonschema.py) writes schemas/<action>.schema.json into a skill dir
REGENERATE_COMMAND = "python -m stereo.config.jsonschema --skill-dir {skill_dir}"


@dataclass(frozen=True)
class SkillFacts:
    """The few facts about a skill that the policy needs."""

    model: str
    automl_enabled: bool
    has_train_schema: bool
    has_train_template: bool
    skill_dir: str = "<skill_dir>"


@dataclass(frozen=True)
class PolicyDecision:
    mode: str  # "sweep" | "plain"
    policy_used: str  # "auto" | "on" | "off"
    reasons: Tuple[str, ...]
    missing: Tuple[str, ...] = ()  # skill files that keep AutoML from running
    regenerate_command: Optional[str] = None

    @property
    def sweep(self) -> bool:
        return self.mode == "sweep"

    def explain(self) -> str:
        lines = [f"{self.mode} (policy {self.policy_used}):"] + [f"  - {r}" for r in self.reasons]
        if self.regenerate_command:
            lines.append(f"  fix: {self.regenerate_command}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"mode": self.mode, "policy_used": self.policy_used, "reasons": list(self.reasons),
                "missing": list(self.missing), "regenerate_command": self.regenerate_command}


def resolve_policy(*, action: str, skill: SkillFacts, policy: Optional[str],
                   request: Optional[str]) -> PolicyDecision:
    """Decide sweep vs plain for `action` on `skill`; `policy` is ``--policy``, `request` the user's words."""
    policy_used, why = _policy(policy, request)
    reasons = [why]
    if action != SWEEP_ACTION:
        reasons.append(f"action '{action}' never routes to AutoML; only '{SWEEP_ACTION}' can sweep")
        return PolicyDecision("plain", policy_used, tuple(reasons))
    if policy_used == "off":
        reasons.append("AutoML is off: one plain training run")
        return PolicyDecision("plain", policy_used, tuple(reasons))
    if not skill.automl_enabled:
        reasons.append(f"{skill.model} has automl_enabled: false in references/skill_info.yaml, so it trains "
                       "plainly" + (" although --policy on was given" if policy_used == "on" else ""))
        return PolicyDecision("plain", policy_used, tuple(reasons))
    missing = tuple(f for f, present in ((TRAIN_SCHEMA, skill.has_train_schema),
                                         (TRAIN_TEMPLATE, skill.has_train_template)) if not present)
    if missing:
        reasons.append(f"AutoML is enabled for {skill.model} but not runnable until schemas are generated "
                       f"(missing: {', '.join(missing)})")
        if TRAIN_TEMPLATE in missing:
            reasons.append(f"the schema generator does not write spec templates: add {TRAIN_TEMPLATE} to "
                           f"{skill.skill_dir} by hand")
        return PolicyDecision("plain", policy_used, tuple(reasons), missing,
                              REGENERATE_COMMAND.format(skill_dir=skill.skill_dir))
    reasons.append(f"AutoML is enabled for {skill.model} and both {TRAIN_SCHEMA} and {TRAIN_TEMPLATE} are "
                   "present: sweep")
    return PolicyDecision("sweep", policy_used, tuple(reasons))


def _policy(policy: Optional[str], request: Optional[str]) -> Tuple[str, str]:
    if policy is not None:
        value = str(policy).strip().lower()
        if value not in POLICIES:
            raise ValueError(f"--policy {policy!r} is not one of {', '.join(POLICIES)}; pass --policy auto, on "
                             "or off")
        return value, f"--policy {value} given explicitly"
    phrase, negated = find_off_phrase(request or "")
    if phrase and not negated:
        return "off", f"the request says \"{phrase}\", so AutoML is off"
    if phrase:
        return "auto", f"the request says \"{phrase}\" (a negation, not a request to turn AutoML off): policy auto"
    return "auto", "no --policy and no AutoML-off phrase in the request: policy auto (the default)"


# --- request phrases --------------------------------------------------------------------------------
_CONTRACTIONS = ((r"\b(do|does|did|should|would|could|is|are|was|were|must)n'?t\b", r"\1 not"),
                 (r"\bdont\b", "do not"), (r"\bwon'?t\b", "will not"), (r"\bcan'?t\b|\bcannot\b", "can not"))
_SYNONYMS = ((r"\bauto[\s_-]?ml\b", "automl"),
             (r"\bhyper[\s_-]?param(?:eter)?s?[\s_-]+(?:optimi[sz]ation|search|tuning|sweeps?)\b", "hpo"),
             (r"\bsweeps\b|\bsweeping\b", "sweep"), (r"\bw/o\b", "without"))
_T = r"(?:the |any |an |a )?(?:automl|hpo|sweep)(?: sweep| search| hpo)?"
_OFF = (rf"\b(?:turn|turning|switch|switching|shut|shutting) off {_T}\b",
        rf"\b(?:turn|switch) {_T} off\b",
        rf"\b(?:disable|disabling|disabled|deactivate) {_T}\b",
        r"\b(?:automl|hpo|sweep) (?:off|disabled|false|no)\b",
        rf"\b(?:no|without|skip|skipping) {_T}\b",
        r"\bplain(?:ly)? (?:training|train|run|fine ?tuning|finetune)\b",
        r"\btrain(?:ing)? plainly\b")
#: phrases whose own negation is what makes them mean "off" ("don't use AutoML")
_NOT_ON = rf"\b(?:do|does|did|will|should|would) not (?:use|run|do|want|need|start|launch) {_T}\b"
_NEGATORS = re.compile(r"\b(?:not|never)\b|\bno need to\b")


def _normalise(text: str) -> str:
    text = text.lower().replace("\u2019", "'")
    for pattern, repl in _CONTRACTIONS + _SYNONYMS:
        text = re.sub(pattern, repl, text)
    return text


def find_off_phrase(request: str) -> Tuple[Optional[str], bool]:
    """(the last AutoML-off phrase in `request` or None, whether a negation in front cancels it).

    Clauses are split at sentence punctuation so "No, don't skip HPO" reads as one negated phrase
    and "Keep it simple, no HPO" as an un-negated one; ':' and '=' are spacing ("AutoML: off").
    """
    found: Tuple[Optional[str], bool, int] = (None, False, -1)
    offset = 0
    for clause in re.split(r"[.,;!?\n]+", _normalise(request)):
        words = " ".join(re.sub(r"[^a-z0-9' ]+", " ", clause).split())
        for pattern in _OFF + (_NOT_ON,):
            for match in re.finditer(pattern, words):
                before = " ".join(words[:match.start()].split()[-3:])
                negated = pattern != _NOT_ON and bool(_NEGATORS.search(before))
                if offset + match.start() > found[2]:
                    phrase = (before + " " + match.group(0)).strip() if negated else match.group(0)
                    found = (phrase, negated, offset + match.start())
        offset += len(clause) + 1
    return found[0], found[1]
