"""One way to declare a spec field: default + the metadata that validation and schema generation read.

Every dataclass field in ``stereo.config`` is declared with :func:`spec_field`, so range checks, enums,
descriptions and AutoML flags live next to the default they describe (one source of truth; the JSON
schemas in ``schemas/`` are generated from this metadata).
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Sequence

#: metadata keys understood by stereo.config.validate and stereo.config.jsonschema
META_KEYS = (
    "description",  # one sentence, user facing
    "title",  # short label (schema `title`)
    "minimum",  # inclusive lower bound (numbers; for lists: every element)
    "maximum",  # inclusive upper bound
    "enum",  # allowed values
    "ignore_case",  # True: enum matching ignores case and the value is stored in the enum's spelling
    "automl",  # True: the code really consumes it and it may be searched (schema automl_enabled)
    "math_cond",  # TAO schema dialect: "> 0.0", "^ 2", "/ 32", ...
    "log_scale",  # sample log-uniformly when searched (learning rates, weight decay)
    "option_weights",  # TAO dialect: weights for enum choices
    "depends_on",  # TAO dialect: name of a parent parameter
    "popular",  # TAO dialect: show first in UIs
    "unit",  # e.g. "MiB", "px"
    "tao_note",  # where we deliberately differ from TAO (rendered into docs/spec_reference.md)
)


def spec_field(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
               **meta: Any) -> Any:
    """A dataclass field carrying spec metadata (see META_KEYS).

    Mutable defaults (lists, dicts) are copied per instance automatically.
    """
    unknown = set(meta) - set(META_KEYS)
    if unknown:
        raise TypeError(f"spec_field got unknown metadata {sorted(unknown)}; known: {META_KEYS}")
    if default_factory is dataclasses.MISSING and isinstance(default, (list, dict)):
        value = default
        default_factory = lambda: copy.deepcopy(value)  # noqa: E731
        default = dataclasses.MISSING
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


def enum_of(*values: Any) -> Sequence[Any]:
    return tuple(values)
