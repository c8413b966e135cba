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

4. a sweep needs something to search: when the user's overrides fix every searched parameter, or every one
   is dead in this run, ``auto`` trains plainly (the reasons say so) and ``on`` is an error.

The decision is made once, here, and frozen: nothing downstream rewrites it. No I/O here: the caller
passes :class:`SkillFacts` (``Skill.facts()`` builds them from a skill directory) and, for rule 4, a
callable that examines the search space only when rules 1-3 say sweep (automl/plan/launch.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from automl.errors import LaunchError
from automl.policy.request import read_request

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
class NothingToSearch:
    """Why a sweep would have nothing to search: every searched parameter is fixed or dead."""

    what: str  # "your overrides fix every searched parameter"
    listing: str  # the parameters and their values or why each is dead
    fix: str = "drop one of those overrides"
    plain: str = ""  # appended to the plain-run reason ("with your values")


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

    @classmethod
    def from_dict(cls, data: dict) -> "PolicyDecision":
        return cls(str(data["mode"]), str(data["policy_used"]), tuple(data.get("reasons") or ()),
                   tuple(data.get("missing") or ()), data.get("regenerate_command"))


def resolve_policy(*, action: str, skill: SkillFacts, policy: Optional[str], request: Optional[str],
                   nothing_to_search: Optional[Callable[[], Optional[NothingToSearch]]] = None) -> PolicyDecision:
    """Decide sweep vs plain for `action` on `skill`; `policy` is ``--policy``, `request` the user's words.

    `nothing_to_search()` is called only when everything else says sweep; it returns why the search space
    would be empty, or None. Raises :class:`LaunchError` when the policy is ``on`` and it is empty.
    """
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
    empty = nothing_to_search() if nothing_to_search is not None else None
    if empty is None:
        return PolicyDecision("sweep", policy_used, tuple(reasons))
    if policy_used == "on":
        raise LaunchError(f"AutoML is on, but {empty.what} ({empty.listing}), so there is nothing to search; "
                          f"{empty.fix}, pass --search-space with other parameters, or use --policy off for one "
                          "plain training run")
    reasons.append(f"{empty.what} ({empty.listing}), so there is nothing to search: one plain training run"
                   + (f" {empty.plain}" if empty.plain else ""))
    return PolicyDecision("plain", policy_used, tuple(reasons))


def _policy(policy: Optional[str], request: Optional[str]) -> Tuple[str, str]:
    if policy is not None:
        value = str(policy).strip().lower()
        if value not in POLICIES:
            raise LaunchError(f"--policy {policy!r} is not one of {', '.join(POLICIES)}; pass --policy auto, on "
                             "or off")
        return value, f"--policy {value} given explicitly"
    reading = read_request(request or "")
    if reading.policy is not None:
        return reading.policy, reading.reason
    return "auto", reading.reason
