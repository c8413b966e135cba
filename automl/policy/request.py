"""What the user's words say about the AutoML policy: "turn off AutoML", "no HPO", "plain training",
"automl_policy: off" mean off; "enable AutoML", "automl_policy: on" mean on; negations ("don't turn off
AutoML"), questions ("is plain training better?") and comparisons ("compare with plain training") are not
requests. Pure text reading; automl/policy/decision.py decides with it."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Tuple


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
