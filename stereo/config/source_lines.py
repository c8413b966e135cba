"""Read a YAML spec together with the line of every key, so problems can say `spec.yaml:12:`.

Keys are rendered the way users and TAO's skill_info write them: `a.b.c`, list items as `a.b[0].c`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Tuple, Union

import yaml

from stereo.config.errors import Problem, SpecError, missing_value

PathT = Tuple[Union[str, int], ...]


def render_key(path: Iterable[Union[str, int]]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def parse_key(key: str) -> PathT:
    """'a.b[0].c' (or 'a.b.0.c', the OmegaConf dotlist spelling) -> ('a', 'b', 0, 'c')."""
    parts: list = []
    for chunk in key.split("."):
        name, _, rest = chunk.partition("[")
        if name:
            parts.append(int(name) if name.isdigit() else name)
        while rest:
            index, _, rest = rest.partition("]")
            if not index.isdigit():
                raise ValueError(f"bad list index '[{index}]' in key '{key}'; write e.g. "
                                 "dataset.train_dataset.data_sources[0].data_file")
            parts.append(int(index))
            rest = rest[1:] if rest.startswith("[") else rest
    if not parts:
        raise ValueError(f"empty key '{key}'")
    return tuple(parts)


def read_yaml_with_lines(path: Union[str, Path]) -> Tuple[Dict[str, Any], Dict[str, int]]:
    """Parse a YAML mapping; returns (data, {rendered key: 1-based line})."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: spec file not found; pass an existing YAML file with -e")
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise SpecError([Problem("", missing_value(), f"not valid YAML: {getattr(exc, 'problem', exc)}",
                                 "fix the YAML syntax (indentation, ':' after keys, quotes)",
                                 file=str(path), line=line)]) from None
    if data is None:
        data, node = {}, None
    if not isinstance(data, dict):
        raise SpecError([Problem("", type(data).__name__, "a spec must be a YAML mapping of sections",
                                 "start the file with keys such as 'model:' and 'dataset:'", file=str(path),
                                 line=1)])
    lines: Dict[str, int] = {}
    if node is not None:
        _collect(node, (), lines)
    return data, lines


def _collect(node: yaml.Node, path: PathT, lines: Dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            sub = path + (str(key_node.value),)
            lines.setdefault(render_key(sub), key_node.start_mark.line + 1)
            _collect(value_node, sub, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            sub = path + (index,)
            lines.setdefault(render_key(sub), item.start_mark.line + 1)
            _collect(item, sub, lines)


def line_of(key: str, lines: Dict[str, int]) -> Optional[int]:
    """The line of `key`, or of its closest ancestor present in the file (a missing key is reported where
    its section is)."""
    path = list(parse_key(key)) if key else []
    while path:
        line = lines.get(render_key(path))
        if line is not None:
            return line
        path.pop()
    return None
