"""Generate `schemas/<action>.schema.json` in TAO's schema dialect from the spec dataclasses.

The dialect (see the TAO skill bank's train.schema.json): nested `properties`, each leaf with `type` in
{bool, int, ordered_int, float, string, categorical, list, collection}, `title`, `description`,
`default`, `minimum`, `maximum`, `enum`, `math_cond`, `automl_enabled`, `popular`; top level
`default`, `automl_default_parameters`, `automl_disabled_parameters`, `popular`, `required`,
`x_tao_schema`. Extensions TAO readers ignore: `log_scale` (sample log-uniformly) and `unit`.

AutoML flags are honest: only fields whose metadata says `automl=True`, only in the train schema, and
never under validation/test/inference data (those splits are not augmented).

    python -m stereo.config.jsonschema --out schemas
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from stereo.config.coerce import field_type
from stereo.config.spec import ACTION_SECTIONS, ExperimentSpec

SCHEMA_VERSION = 1
TOP_LEVEL_SCALARS = ("model_name", "results_dir", "encryption_key")
#: splits that are never augmented, so their augmentation knobs are never searched
_NOT_SEARCHED = ("dataset.val_dataset.", "dataset.test_dataset.", "dataset.infer_dataset.")


def schema_actions() -> List[str]:
    """Actions with a schema: the ExperimentSpec actions, plus convert when its config exists."""
    actions = list(ACTION_SECTIONS)
    if _convert_type() is not None:
        actions.append("convert")
    return actions


def generate_schema(action: str, *, defaults: Optional[Mapping[str, Any]] = None,
                    automl_default_parameters: Optional[Sequence[str]] = None,
                    model: str = "stereo-automl") -> Dict[str, Any]:
    """TAO-dialect JSON schema for one action.

    `defaults`: spec values to publish as defaults, nested or dotted (skill_info key_defaults), checked
    by load_spec first. `automl_default_parameters`: the default search (e.g. FFS: train.optim.lr and
    train.optim.lr_decay); each must be an automl-enabled leaf; None: every automl-enabled leaf.
    """
    from stereo.config.load import apply_key_defaults, resolve_spec  # load imports this package's modules

    if action == "convert":
        spec_type, names = _convert_type(), None
        if spec_type is None:
            raise ValueError("action 'convert': stereo.config.convert.ConvertConfig is not available")
    elif action in ACTION_SECTIONS:
        spec_type, names = ExperimentSpec, TOP_LEVEL_SCALARS + ACTION_SECTIONS[action]
    else:
        raise ValueError(f"unknown schema action '{action}'; valid: {', '.join(schema_actions())}")
    raw = apply_key_defaults(_dotted(defaults or {}))
    instance = resolve_spec(raw, spec_type=spec_type).spec
    walker = _Walker(searchable=action == "train")
    properties = walker.properties(instance, names, "")
    enabled = sorted(walker.enabled)
    if automl_default_parameters is None:
        chosen = enabled
    else:
        chosen = list(automl_default_parameters)
        bad = [p for p in chosen if p not in walker.enabled]
        if bad:
            raise ValueError(f"automl_default_parameters {bad} are not automl-enabled leaves of the {action} "
                             f"schema; choose from {enabled}")
    return {
        "type": "object",
        "properties": properties,
        "default": {name: _value(getattr(instance, name)) for name in properties},
        "automl_default_parameters": chosen,
        "automl_disabled_parameters": sorted(walker.disabled),
        "popular": walker.popular_defaults,
        "required": sorted(n for n in properties if n in (ACTION_SECTIONS.get(action) or ())),
        "x_tao_schema": {"action": action, "schema_action": action, "core_module": "depth_net",
                         "model": model, "network_arch": "depth_net_stereo", "schema_version": SCHEMA_VERSION,
                         "source": "stereo-automl dataclass config (stereo.config)"},
    }


class _Walker:
    def __init__(self, searchable: bool):
        self.searchable = searchable
        self.enabled: set = set()
        self.disabled: set = set()
        self.popular_defaults: Dict[str, Any] = {}

    def properties(self, obj: Any, names: Optional[Sequence[str]], prefix: str) -> Dict[str, Any]:
        fields = {f.name: f for f in dataclasses.fields(obj)}
        return {name: self.entry(obj, fields[name], prefix + name) for name in (names or fields)}

    def entry(self, obj: Any, f: dataclasses.Field, dotted: str) -> Dict[str, Any]:
        value = getattr(obj, f.name)
        tp = field_type(type(obj), f.name)
        meta = f.metadata
        if dataclasses.is_dataclass(tp):
            return self.collection(value, tp, dotted)
        title = meta.get("title") or f.name.replace("_", " ")
        entry: Dict[str, Any] = {"type": _type_name(tp, meta), "title": title}
        if meta.get("description"):
            entry["description"] = meta["description"]
        if value is not None:
            entry["default"] = _value(value)
        if not isinstance(value, list):
            for key in ("minimum", "maximum"):
                if meta.get(key) is not None:
                    entry[key] = meta[key]
        if meta.get("enum") is not None:
            entry["enum"] = list(meta["enum"])
        for key in ("math_cond", "log_scale", "unit", "option_weights", "depends_on"):
            if meta.get(key):
                entry[key] = meta[key]
        if meta.get("popular"):
            entry["popular"] = True
            _set(self.popular_defaults, dotted, _value(value))
        wanted = bool(meta.get("automl"))
        allowed = self.searchable and not dotted.startswith(_NOT_SEARCHED)
        if wanted and allowed:
            entry["automl_enabled"] = True
            self.enabled.add(dotted)
        elif wanted or meta.get("automl") is False or entry["type"] == "list":
            entry["automl_enabled"] = False
            self.disabled.add(dotted)
        return entry

    def collection(self, value: Any, tp: type, dotted: str) -> Dict[str, Any]:
        before_enabled, before_disabled = set(self.enabled), set(self.disabled)
        props = self.properties(value, None, dotted + ".")
        self.disabled.add(dotted)
        entry: Dict[str, Any] = {"type": "collection", "title": dotted.rsplit(".", 1)[-1].replace("_", " "),
                                 "properties": props, "default": _value(value), "automl_enabled": False}
        doc = (tp.__doc__ or "").strip()
        if doc and not doc.startswith(tp.__name__ + "("):  # skip the auto-generated dataclass signature
            entry["description"] = " ".join(doc.split("\n\n")[0].split())
        inner_enabled = sorted(self.enabled - before_enabled)
        inner_disabled = sorted(self.disabled - before_disabled - {dotted})
        if inner_enabled:
            entry["automl_default_parameters"] = inner_enabled
        if inner_disabled:
            entry["automl_disabled_parameters"] = inner_disabled
        popular = sorted(k for k, v in props.items() if v.get("popular"))
        if popular:
            entry["popular"] = popular
        return entry


def _type_name(tp: Any, meta: Mapping[str, Any]) -> str:
    if typing.get_origin(tp) is list:
        return "list"
    if tp is bool:
        return "bool"
    if tp is int:
        return "ordered_int" if meta.get("enum") else "int"
    if tp is float:
        return "float"
    if tp is str:
        return "categorical" if meta.get("enum") else "string"
    return "collection"


def _value(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else copy.deepcopy(
        [_value(v) for v in value] if isinstance(value, list) else value)


def _set(tree: Dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def _dotted(defaults: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """Accept nested or dotted defaults; return dotted."""
    out: Dict[str, Any] = {}
    for key, value in defaults.items():
        if isinstance(value, Mapping):
            out.update(_dotted(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _convert_type() -> Optional[type]:
    try:
        from stereo.config.convert import ConvertConfig
    except ImportError:
        return None
    return ConvertConfig


def schema_json(schema: Mapping[str, Any]) -> str:
    """Deterministic text: sorted keys, two-space indent, trailing newline; no NaN/Infinity."""
    return json.dumps(schema, indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_schemas(out_dir: Path) -> List[Path]:
    from stereo.atomic_io import atomic_write_text

    return [atomic_write_text(Path(out_dir) / f"{action}.schema.json", schema_json(generate_schema(action)))
            for action in schema_actions()]


def write_skill_schemas(skill_dir: Path) -> List[Path]:
    """Per-model schemas for a TAO-layout skill: <skill_dir>/schemas/<action>.schema.json for each action
    in references/skill_info.yaml that has a schema, with its key_defaults as defaults.

    The default search comes from, in order: `actions.<action>.automl_default_parameters` in skill_info
    (TAO's per-action override), a top-level `automl_default_parameters` there, the list already in the
    skill's schema file (so regenerating keeps a TAO skill's narrowing), else every enabled leaf.
    """
    import yaml

    from stereo.atomic_io import atomic_write_text

    skill_dir = Path(skill_dir)
    info_path = skill_dir / "references" / "skill_info.yaml"
    if not info_path.is_file():
        raise FileNotFoundError(f"{info_path}: not found; --skill-dir must hold references/skill_info.yaml")
    info = yaml.safe_load(info_path.read_text()) or {}
    written = []
    for action in [a for a in (info.get("actions") or {}) if a in schema_actions()]:
        target = skill_dir / "schemas" / f"{action}.schema.json"
        chosen = (info["actions"][action] or {}).get("automl_default_parameters",
                                                      info.get("automl_default_parameters"))
        if chosen is None and target.is_file():
            chosen = json.loads(target.read_text()).get("automl_default_parameters")
        if action != "train":
            chosen = []  # only training is ever searched
        schema = generate_schema(action, defaults=info.get("key_defaults") or {},
                                 automl_default_parameters=chosen, model=info.get("name", skill_dir.name))
        written.append(atomic_write_text(target, schema_json(schema)))
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stereo.config.jsonschema", description="Write "
                                     "schemas/<action>.schema.json from the spec dataclasses.")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--out", type=Path, default=Path("schemas"), help="output folder (default: schemas)")
    target.add_argument("--skill-dir", type=Path, help="write a skill's per-model schemas (its key_defaults "
                        "as defaults) into <skill-dir>/schemas/")
    args = parser.parse_args(argv)
    paths = write_skill_schemas(args.skill_dir) if args.skill_dir else write_schemas(args.out)
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
