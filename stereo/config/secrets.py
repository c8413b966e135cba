"""Secrets never leave the process: redaction for every log, artifact, param and console line.

A *secret field* is a spec key whose last part is `encryption_key` or ends in `_key`, or contains `token`,
`password`, `passwd` or `secret` (case-insensitive), holding a non-empty string (so a boolean such as
`model.stereo_backbone.use_clstoken` is not one). Its value is written as :data:`REDACTED` in MLflow
params, experiment.yaml, `depth_net validate`'s resolved spec, and automl's launch.json, launch review and
best_spec.yaml. The running process keeps the real value; a file written with the placeholder must get
the secret again from the user (e.g. a `key=value` override) when it is reused.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "<redacted>"
_SECRET_NAME = re.compile(r"(^|_)key$|token|password|passwd|secret", re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    """True for a (dotted) key whose last part names a secret: `encryption_key`, `hf_token`, `db.password`."""
    parts = [p for p in re.split(r"[.\[\]/]", str(key)) if p and not p.isdigit()]
    return bool(parts) and bool(_SECRET_NAME.search(parts[-1]))


def _is_secret(key: str, value: Any) -> bool:
    return isinstance(value, str) and value != "" and value != REDACTED and is_secret_key(key)


def redact(data: Any) -> Any:
    """A copy of nested dicts/lists with every secret field's value replaced by REDACTED."""
    if isinstance(data, Mapping):
        return {k: (REDACTED if _is_secret(str(k), v) else redact(v)) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(redact(v) for v in data) if isinstance(data, list) else tuple(redact(v) for v in data)
    return data


def redact_flat(params: Mapping[str, Any]) -> dict:
    """Flattened `{'a.b.encryption_key': v}` params: secret values replaced."""
    return {k: (REDACTED if _is_secret(k, v) else v) for k, v in params.items()}


def redact_override(text: str) -> str:
    """`encryption_key=SECRET` -> `encryption_key=<redacted>`; any other `key=value` unchanged."""
    import yaml

    key, sep, value = str(text).partition("=")
    if not (sep and value.strip() and is_secret_key(key.strip())):
        return str(text)
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        parsed = value
    return f"{key}={REDACTED}" if isinstance(parsed, str) else str(text)  # `use_clstoken=true` is no secret


def secret_values(data: Any) -> set:
    """Every secret string in nested dicts/lists (to scrub free text such as a console line)."""
    found: set = set()
    if isinstance(data, Mapping):
        for k, v in data.items():
            if _is_secret(str(k), v):
                found.add(v)
            else:
                found |= secret_values(v)
    elif isinstance(data, (list, tuple)):
        for v in data:
            found |= secret_values(v)
    return found


def scrub(text: str, secrets: set) -> str:
    """`text` with every occurrence of a secret value replaced."""
    for value in sorted(secrets, key=len, reverse=True):
        if len(value) >= 3:  # a 1-2 character "secret" would shred ordinary words
            text = text.replace(value, REDACTED)
    return text
