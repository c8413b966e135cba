"""Skill directories in TAO's layout, read-only.

A skill directory (ours in the repo's top-level ``skills/<name>/``, or a TAO skill-bank one, unchanged)::

    references/skill_info.yaml            name, network_arch, automl_enabled, actions, spec_params,
                                          key_defaults, spec_shorthand_keys, spec_templates, description
    references/spec_template_<action>.yaml
    schemas/<action>.schema.json          generated (python -m stereo.config.jsonschema --skill-dir <dir>)

Unknown extra fields in skill_info.yaml (TAO has many: container_image, data_sources, notes ...) are
kept in :attr:`Skill.extra` and never rejected. Nothing here writes to a skill directory.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import yaml

from automl.errors import AutomlInputError
from automl.policy.decision import SkillFacts
from automl.space.build import did_you_mean

#: our shipped skills; tests and users may pass other roots
SKILLS_ROOT = Path(__file__).resolve().parents[2] / "skills"
INFO_FILE = Path("references") / "skill_info.yaml"
_KNOWN = ("name", "network_arch", "automl_enabled", "actions", "spec_params", "key_defaults",
          "spec_shorthand_keys", "spec_templates", "description")


class SkillError(AutomlInputError):
    """A skill directory that cannot be used; the message names the file, the key and the fix."""


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Skill:
    path: Path
    name: str
    network_arch: Optional[str]
    automl_enabled: bool
    description: str
    actions: Mapping[str, Any]
    spec_params: Mapping[str, Any]
    key_defaults: Mapping[str, Any]
    spec_shorthand_keys: Mapping[str, str]
    spec_templates: Mapping[str, Path]  # action -> resolved template path
    extra: Mapping[str, Any] = field(default_factory=dict)  # every other skill_info.yaml field

    @property
    def info_path(self) -> Path:
        return self.path / INFO_FILE

    def schema_path(self, action: str) -> Path:
        return self.path / "schemas" / f"{action}.schema.json"

    def template_path(self, action: str) -> Path:
        return self.spec_templates.get(action, self.path / "references" / f"spec_template_{action}.yaml")

    def has_schema(self, action: str) -> bool:
        return self.schema_path(action).is_file()

    def has_template(self, action: str) -> bool:
        return self.template_path(action).is_file()

    @property
    def has_train_schema(self) -> bool:
        return self.has_schema("train")

    @property
    def has_train_template(self) -> bool:
        return self.has_template("train")

    @property
    def model_type(self) -> Optional[str]:
        """``model.model_type`` from key_defaults, else from the train (or any) action's spec_params."""
        if "model.model_type" in self.key_defaults:
            return self.key_defaults["model.model_type"]
        for action in ["train"] + [a for a in self.spec_params if a != "train"]:
            value = (self.spec_params.get(action) or {}).get("model.model_type")
            if value:
                return value
        return None

    def load_schema(self, action: str = "train") -> dict:
        path = self.schema_path(action)
        if not path.is_file():
            raise SkillError(f"{path}: missing; generate it with python -m stereo.config.jsonschema "
                             f"--skill-dir {self.path}")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise SkillError(f"{path}: not valid JSON ({exc}); regenerate it with python -m "
                             f"stereo.config.jsonschema --skill-dir {self.path}") from None

    def load_template(self, action: str = "train") -> dict:
        path = self.template_path(action)
        if not path.is_file():
            raise SkillError(f"{self.info_path}: key 'spec_templates.{action}': {path} does not exist; add the "
                             "template or fix the path")
        data = yaml.safe_load(path.read_text())
        if not isinstance(data, dict):
            raise SkillError(f"{path}: a spec template must be a YAML mapping, got {type(data).__name__}")
        return data

    def facts(self) -> SkillFacts:
        """What the policy resolver needs, read from disk once."""
        return SkillFacts(model=self.name, automl_enabled=self.automl_enabled,
                          has_train_schema=self.has_train_schema, has_train_template=self.has_train_template,
                          skill_dir=str(self.path))


def load_skill(directory: Union[str, os.PathLike]) -> Skill:
    """Read ``<directory>/references/skill_info.yaml`` (TAO layout)."""
    root = Path(directory).expanduser().resolve()
    info = root / INFO_FILE
    if not info.is_file():
        raise SkillError(f"{info}: not found; a skill directory holds references/skill_info.yaml "
                         "(TAO layout)")
    try:
        data = yaml.safe_load(info.read_text())
    except yaml.YAMLError as exc:
        raise SkillError(f"{info}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise SkillError(f"{info}: expected a YAML mapping at the top, got {type(data).__name__}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SkillError(f"{info}: key 'name': expected the skill's name, got {name!r}; add e.g. "
                         f"name: {root.name}")
    enabled = data.get("automl_enabled", False)
    if not isinstance(enabled, bool):
        raise SkillError(f"{info}: key 'automl_enabled': expected true or false, got {enabled!r}")
    sections: Dict[str, Mapping[str, Any]] = {}
    for key in ("actions", "spec_params", "key_defaults", "spec_shorthand_keys", "spec_templates"):
        value = data.get(key) or {}
        if not isinstance(value, dict):
            raise SkillError(f"{info}: key '{key}': expected a mapping, got {type(value).__name__}")
        sections[key] = value
    for key in ("spec_shorthand_keys", "spec_templates"):
        for short, target in sections[key].items():
            if not isinstance(target, str) or not target:
                raise SkillError(f"{info}: key '{key}.{short}': expected a string, got {target!r}")
    return Skill(
        path=root, name=name, network_arch=data.get("network_arch"), automl_enabled=enabled,
        description=str(data.get("description") or ""),
        actions=_frozen(sections["actions"]), spec_params=_frozen(sections["spec_params"]),
        key_defaults=_frozen(sections["key_defaults"]),
        spec_shorthand_keys=_frozen(sections["spec_shorthand_keys"]),
        spec_templates=_frozen({a: _template(root, p) for a, p in sections["spec_templates"].items()}),
        extra=_frozen({k: v for k, v in data.items() if k not in _KNOWN}))


def _template(root: Path, relative: str) -> Path:
    # TAO writes "../references/spec_template_train.yaml": relative to references/ (where skill_info.yaml
    # lives). Fall back to the skill root for skills that write "references/spec_template_train.yaml".
    candidates = [Path(os.path.normpath(root / "references" / relative)), Path(os.path.normpath(root / relative))]
    return next((c for c in candidates if c.is_file()), candidates[0])


def _skill_dirs(roots: Sequence[Union[str, os.PathLike]]) -> List[Path]:
    return sorted(d for r in roots if Path(r).is_dir() for d in Path(r).iterdir() if (d / INFO_FILE).is_file())


def list_skills(roots: Optional[Sequence[Union[str, os.PathLike]]] = None) -> List[str]:
    """Directory names of the skills under `roots` (default: the repo's ``skills/``)."""
    return [d.name for d in _skill_dirs(roots or (SKILLS_ROOT,))]


def find_skill(name: str, roots: Optional[Sequence[Union[str, os.PathLike]]] = None) -> Skill:
    """A skill by directory name or skill_info ``name`` (``_`` and ``-`` and case are interchangeable).

    A path to a skill directory is accepted too.
    """
    if (Path(name).expanduser() / INFO_FILE).is_file():
        return load_skill(name)
    wanted = name.strip().lower().replace("_", "-")
    dirs = _skill_dirs(roots or (SKILLS_ROOT,))
    for directory in dirs:
        if directory.name.lower().replace("_", "-") == wanted:
            return load_skill(directory)
    for directory in dirs:
        skill = load_skill(directory)
        if skill.name.lower().replace("_", "-") == wanted:
            return skill
    names = [d.name for d in dirs]
    raise SkillError(f"unknown skill {name!r}{did_you_mean(wanted, names)}; available: "
                     f"{', '.join(names) or '(none under ' + ', '.join(map(str, roots or (SKILLS_ROOT,))) + ')'}")


def expand_shorthand(skill: Skill, overrides: Sequence[str]) -> List[str]:
    """``["learning_rate=1e-4"]`` -> ``["train.optim.lr=1e-4"]`` via the skill's ``spec_shorthand_keys``.

    Dotted keys and keys that are not shorthands pass through unchanged (the spec loader checks them).
    """
    out = []
    for item in overrides:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise SkillError(f"override {item!r} must look like key=value (e.g. learning_rate=1e-4 or "
                             "train.optim.lr=1e-4)")
        key = key.strip()
        out.append(f"{skill.spec_shorthand_keys.get(key, key)}={value}")
    return out
