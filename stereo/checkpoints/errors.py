"""Exceptions raised by checkpoint reading, writing and loading.

Every message is one line that names the file (or the `what` of a load), the offending value and the fix;
`CheckpointMismatchError` adds the key lists after its summary line.
"""
from __future__ import annotations

from stereo.errors import EXIT_BAD_INPUT, StereoError


class CheckpointError(StereoError):
    """Base class: anything wrong with a checkpoint file or with fitting it to a model. The file is the
    user's input, so the CLI exits 2 (not a ValueError: callers catch these by type)."""
    exit_code = EXIT_BAD_INPUT


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path (or its JSON sidecar) does not exist."""


class CheckpointFormatError(CheckpointError):
    """The file is not a checkpoint we can read: unknown format, truncated or corrupt, no state dict."""


class UnsafeCheckpointError(CheckpointError):
    """The pickle references or calls a global outside the allow-list; nothing of it was executed."""


class CheckpointMismatchError(CheckpointError):
    """The state dict does not fit the model: missing, unexpected or shape-mismatched keys."""
