"""Render docs/spec_reference.md from the spec dataclasses (one table per section + the TAO deviations).

    python -m stereo.config.reference_doc --out docs/spec_reference.md
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

from stereo.config.coerce import field_type
from stereo.config.spec import ExperimentSpec

HEADER = """# Spec reference

Generated from `stereo/config/*.py` by `python -m stereo.config.reference_doc --out docs/spec_reference.md`
(a test fails when this file is stale). Field names and meanings follow TAO `depth_net`; `(ours)` marks
extensions. Load a spec with `depth_net validate -e spec.yaml [key=value ...]`: unknown keys, wrong types,
out-of-range values, unfilled `<placeholders>` and cross-field mistakes are all reported at once, one line
each with `file:line`, the key, the value and the fix.

## Interpolation

Any value may refer to another key with OmegaConf's `${...}` syntax; references are resolved first, then
the result is checked like a written value. `max_steps: ${train.num_epochs}` copies the number (a value
that is exactly one `${key}` keeps the referenced type; a whole section or list may be copied too, e.g.
`val_dataset.data_sources: ${dataset.train_dataset.data_sources}`); `results_dir:
/runs/${model.model_type}-${model.encoder}` builds a string. A reference sees the values the file and
its `key=value` overrides write, else the field's default (not the `model.*` values a non-train action
fills from its checkpoint). OmegaConf's resolvers work too: `${oc.env:DATA_ROOT}` reads an environment
variable (a string; wrap it as `${oc.decode:${oc.env:N}}` for a number). A missing key, a cycle, an
unknown resolver or bad syntax is one error on the key that holds the reference. The saved
`experiment.yaml` and `depth_net validate` show the resolved values.

"Search" = `automl_enabled` in the train schema (only the training split's augmentation is searchable).
Numbers in ranges are inclusive. `/ 32` = must be a multiple of 32.
"""


def render_reference() -> str:
    sections: List[Tuple[str, type, Any]] = []
    _collect("", ExperimentSpec, ExperimentSpec(), sections, {})
    convert = _convert()
    if convert is not None:  # a flat spec of its own: bare keys, titled by file
        flat: List[Tuple[str, type, Any]] = []
        _collect("", convert, convert(), flat, {})
        sections += [("convert.yaml", cls, rows) for _, cls, rows in flat]
    out = [HEADER]
    notes: List[str] = []
    for title, cls, rows in sections:
        out.append(f"\n## `{title or 'top level'}`\n")
        note_prefix = "convert.yaml: " if title == "convert.yaml" else ""
        doc = (cls.__doc__ or "").strip()
        if doc and not doc.startswith(cls.__name__ + "("):
            out.append(" ".join(doc.split("\n\n")[0].split()) + "\n")
        if isinstance(rows, str):
            out.append(rows + "\n")
            continue
        out.append("| key | type | default | range / options | search | description |")
        out.append("|---|---|---|---|---|---|")
        for key, f, tp, default in rows:
            meta = f.metadata
            out.append("| `{}` | {} | `{}` | {} | {} | {} |".format(
                key, _type(tp), _fmt(default), _range(meta), "yes" if meta.get("automl") else "",
                _cell(meta.get("description", ""), meta.get("unit"))))
            if meta.get("tao_note"):
                notes.append(f"- {note_prefix}`{key}`: {meta['tao_note']}")
    out.append(_checkpoint_checks())
    out.append("\n## Where we differ from TAO\n")
    out += sorted(notes)
    return "\n".join(out) + "\n"


def _checkpoint_checks() -> str:
    """The model-vs-checkpoint rules of stereo/config/checkpoint_rules.py, from its constants."""
    from stereo.config.checkpoint_rules import ACTION_CHECKPOINT_KEYS, BACKBONE_PATH_FIELDS, FFS_FREE_FIELDS
    from stereo.config.model import FFS_BP2

    per_action = "; ".join(f"{a}: {', '.join(f'`{k}`' for k in keys) or 'none'}"
                           for a, keys in ACTION_CHECKPOINT_KEYS.items())
    return "\n".join([
        "\n## Model vs checkpoint\n",
        "Checked whenever a spec is loaded: `depth_net <action>` (and `depth_net validate --action <action>`) "
        f"compares `model.*` with the checkpoints that action loads ({per_action}); `depth_net validate` "
        "without `--action` with all of them. Each mismatch is one error naming the key, the value and the "
        "fix.\n",
        "- **Our checkpoints** (`<name>.safetensors` with its `<name>.json` sidecar; a Lightning `<name>.ckpt` "
        "has the same sidecar beside it) are checked by content: when the spec or the sidecar's `config` "
        "says FastFoundationStereo, every `model.*` field must equal the sidecar's, except the ones that do "
        f"not change what the weights mean ({', '.join(f'`{k}`' for k in FFS_FREE_FIELDS)}). A different "
        "`model_type` is one error.",
        "- **Research pickles and TAO `.pth`** have no sidecar, and unpickling a 70 MB file at validate time "
        "is too slow, so the file name decides: with `model_type: FastFoundationStereo`, a checkpoint whose "
        "name contains `bp2` requires every bp2 invariant ("
        + ", ".join(f"`{k}: {_fmt(v)}`" for k, v in FFS_BP2.items() if k != "model_type")
        + "). A bp2 checkpoint renamed without `bp2` is not recognised; keep the name or copy the bp2 model "
        "block from the FFS spec template.",
        "- With FastFoundationStereo, "
        + " and ".join(f"`model.stereo_backbone.{k}`" for k in BACKBONE_PATH_FIELDS)
        + " must be empty: its feature network is the distilled, pruned student, whose weights come from "
        "`train.pretrained_model_path` (the bp2 checkpoint).",
    ])


def _collect(prefix: str, cls: type, obj: Any, sections: list, seen: dict) -> None:
    rows = []
    nested = []
    for f in dataclasses.fields(cls):
        tp = field_type(cls, f.name)
        key = f"{prefix}.{f.name}" if prefix else f.name
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(tp):
            nested.append((key, tp, value))
            continue
        item = typing.get_args(tp)[0] if typing.get_origin(tp) is list else None
        if item is not None and dataclasses.is_dataclass(item):
            nested.append((key + "[]", item, item()))
        rows.append((key, f, tp, value))
    if cls in seen:
        sections.append((prefix, cls, f"Same fields as `{seen[cls]}`."))
        return
    seen[cls] = prefix or "top level"
    sections.append((prefix, cls, rows))
    for key, tp, value in nested:
        _collect(key, tp, value, sections, seen)


def _type(tp: Any) -> str:
    if typing.get_origin(tp) is list:
        inner = typing.get_args(tp)[0]
        return f"list[{getattr(inner, '__name__', inner)}]"
    return getattr(tp, "__name__", str(tp))


def _range(meta: dict) -> str:
    if meta.get("enum") is not None:
        return ", ".join(f"`{e}`" for e in meta["enum"]) + (" (any case)" if meta.get("ignore_case") else "")
    low, high = meta.get("minimum"), meta.get("maximum")
    parts = []
    if low is not None and high is not None:
        parts.append(f"[{low}, {high}]")
    elif low is not None or high is not None:
        parts.append(f">= {low}" if low is not None else f"<= {high}")
    if meta.get("math_cond", "").startswith("/"):
        parts.append(meta["math_cond"])
    if meta.get("log_scale"):
        parts.append("log scale")
    return " ".join(parts)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value) if value == "" else value
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _cell(text: str, unit: Optional[str]) -> str:
    text = text.replace("|", "\\|")
    return f"{text} Unit: {unit}." if unit else text


def _convert() -> Optional[type]:
    try:
        from stereo.config.convert import ConvertConfig
    except ImportError:
        return None
    return ConvertConfig


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stereo.config.reference_doc")
    parser.add_argument("--out", type=Path, default=Path("docs/spec_reference.md"))
    args = parser.parse_args(argv)
    from stereo.atomic_io import atomic_write_text

    print(atomic_write_text(args.out, render_reference()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
