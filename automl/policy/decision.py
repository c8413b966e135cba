"""Should this run be a sweep or one plain training run?  A pure function with its reasons.

Mirrors the routing rule of TAO's stereo skills (docs/automl.md "Policy"):

1. only ``train`` ever sweeps;
2. an explicit ``--policy auto|on|off`` wins; otherwise the user's request: "turn off AutoML", "no HPO",
   "plain training", "automl_policy: off" (and close variants, any case) mean ``off``; "enable AutoML",
   "automl_policy: on" mean ``on``; negations ("don't turn off AutoML"), questions ("is plain training
   better?") and comparisons ("compare with plain training") are not requests; otherwise ``auto``;
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
        asked = "--policy on was given" if policy is not None else "the request asks for it"
        reasons.append(f"{skill.model} has automl_enabled: false in references/skill_info.yaml, so it trains "
                       "plainly" + (f" although {asked}" if policy_used == "on" else ""))
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
    reading = read_request(request or "")
    if reading.policy is not None:
        return reading.policy, reading.reason
    return "auto", reading.reason


# --- request phrases --------------------------------------------------------------------------------
@dataclass(frozen=True)
class RequestReading:
    """What the user's words say about the policy: ``policy`` is on/off/auto, or None when they say nothing."""

    policy: Optional[str]
    phrase: Optional[str]  # the deciding phrase, as normalised ("turn off automl")
    reason: str


_CONTRACTIONS = ((r"\b(do|does|did|should|would|could|is|are|was|were|must|need)n'?t\b", r"\1 not"),
                 (r"\bdont\b", "do not"), (r"\bwon'?t\b", "will not"), (r"\bcan'?t\b|\bcannot\b", "can not"))
_SYNONYMS = ((r"--policy\b", "automl_policy"),
             (r"\bauto[\s-]?ml\b", "automl"),
             (r"\bhyper[\s_-]?param(?:eter)?s?[\s_-]+(?:optimi[sz]ations?|search(?:es|ing)?|tuning|sweeps?)\b",
              "hpo"),
             (r"(?<!fine )(?<!fine-)\btuning\b", "hpo"),  # "skip tuning"; fine-tuning is training, not HPO
             (r"\bsweeps\b|\bsweeping\b", "sweep"), (r"\bw/o\b", "without"))
_X = r"(?:the |any |an |a )?(?:automl|hpo|sweep)(?: sweep| search| hpo)?"
_NEG = r"\b(?:not|never)\b|\bno need to\b"
#: (pattern, meaning, kind). kind: "set" an explicit automl_policy value; "act" a request (a negation in
#: the three words before cancels an off and turns an on into off); "mention" a noun phrase ("plain
#: training") that comparisons and questions do not turn into a request; "not_on" a phrase whose own
#: negation is the request ("don't use AutoML").
_RULES: Tuple[Tuple[str, str, str], ...] = (
    (rf"\b(?:turn|turning|turned|switch|switching|switched|shut|shutting) off {_X}\b", "off", "act"),
    (rf"\b(?:turn|switch|shut) {_X} off\b", "off", "act"),
    (rf"\b(?:disable|disabling|deactivate|deactivating) {_X}\b", "off", "act"),
    (r"\b(?:automl|hpo|sweep)(?: \w+){0,2} (?:off|disabled)\b|\b(?:automl|hpo|sweep) (?:false|no)\b", "off", "act"),
    (rf"\b(?:no|without|skip|skipping|omit|avoid|forgo) {_X}\b", "off", "act"),
    (rf"\bno need (?:for|of) {_X}\b", "off", "act"),
    (rf"\b(?:instead of|rather than) {_X}\b", "off", "act"),
    (r"\btrain(?:ing)? plainly\b|\bplain train\b", "off", "act"),
    (r"\bplain(?:ly)? (?:training|run|fine ?tuning|finetun(?:e|ing))\b", "off", "mention"),
    (rf"\bnot (?:(?:want|need|wish)(?: to (?:use|run|do|start|launch|try))?|use|run|do|start|launch|try|enable"
     rf"|turn on|switch on) {_X}\b|\bnot (?:tune|sweep)\b|\bno need to (?:use|run|do|start|launch) {_X}\b",
     "off", "not_on"),
    (rf"\b(?:enable|enabling|activate|turn on|turning on|switch on|switching on) {_X}\b", "on", "act"),
    (rf"\b(?:turn|switch) {_X} on\b|\b(?:automl|hpo|sweep)(?: (?:is|should be|must be|stays|back))? on$"
     r"|\b(?:automl|hpo|sweep)(?: \w+){0,2} enabled\b", "on", "act"),
    (r"\bautoml policy (?:is |to |be |should be |set to |= )?(auto|on|off)\b", "", "set"),  # last: wins ties
)
#: a sentence with one of these compares runs; "plain training" there names the baseline, not a request
_COMPARISON = re.compile(r"\b(?:compare|compared|comparing|comparison|vs|versus|against|baseline|benchmark)\b")
#: a question is a request only when it asks for something ("could you turn off AutoML?")
_ASKING = re.compile(r"^(?:please |kindly )?(?:can|could|would|will) (?:you|we|i|u)\b|\bplease\b")


def _normalise(text: str) -> str:
    text = text.lower().replace("\u2019", "'")
    for pattern, repl in _CONTRACTIONS + _SYNONYMS:
        text = re.sub(pattern, repl, text)
    return text


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text).split())


def read_request(request: str) -> RequestReading:
    """The policy the user's words ask for (None when they ask for none), and why.

    Sentences end at ``. ! ?`` and newlines, clauses at ``, ;``; ':' '=' '_' are spacing ("automl_policy:
    off"). The last phrase that is a request wins ("don't turn off automl, actually no: turn off automl"
    -> off). Questions ("is plain training better?") and comparisons ("compare with plain training",
    "run AutoML then plain training for comparison") mention plain training without asking for it.
    """
    last: Optional[Tuple[int, Optional[str], str, str]] = None  # (position, policy, phrase, reason)
    aside: Optional[str] = None  # a phrase that was seen but is not a request
    position = 0
    for sentence, end in re.findall(r"([^.!?\n]*)([.!?\n]+|$)", _normalise(request)):
        words = _words(sentence)
        question = "?" in end and not _ASKING.search(words)
        comparison = bool(_COMPARISON.search(words))
        for clause in re.split(r"[,;]+", sentence):
            clause_words = _words(clause)
            for pattern, meaning, kind in _RULES:
                for match in re.finditer(pattern, clause_words):
                    phrase = match.group(0)
                    if question or (kind == "mention" and comparison):
                        why = "a question" if question else "a comparison"
                        aside = aside or f"the request mentions \"{phrase}\" in {why}, not as a request"
                        continue
                    before = " ".join(clause_words[:match.start()].split()[-3:])
                    inside = phrase if kind == "act" and meaning == "off" else ""
                    negated = kind in ("act", "mention") and bool(re.search(_NEG, before + " " + inside))
                    said = (" ".join(before.split()[-1:] if kind == "not_on" else before.split() if negated else [])
                            + " " + phrase).strip()
                    if kind == "set":
                        policy = match.group(1)
                        reason = f"the request sets \"{phrase}\", so the policy is {policy}"
                    elif negated and meaning == "off":
                        policy, reason = None, (f"the request says \"{said}\" (a negation, not a request to turn "
                                                "AutoML off)")
                    else:
                        policy = "off" if negated else meaning
                        reason = f"the request says \"{said}\", so AutoML is {'off' if policy == 'off' else 'on'}"
                    at = position + len(clause_words[:match.start()])
                    if last is None or at >= last[0]:
                        last = (at, policy, said, reason)
            position += len(clause_words) + 1
    if last is not None:
        suffix = "" if last[1] is not None else ": policy auto"
        return RequestReading(last[1], last[2], last[3] + suffix)
    if aside:
        return RequestReading(None, None, aside + ": policy auto (the default)")
    return RequestReading(None, None, "no --policy and no AutoML phrase in the request: policy auto (the default)")
