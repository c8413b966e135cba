"""Every exception stereo raises, in one hierarchy, each class with the exit code the CLI turns it into.

This module sits at the bottom of the package (it imports nothing of stereo): the data readers, the
checkpoint readers, the models, training, deploy and the actions all raise these classes, and the CLIs map
an exception to its exit code by *type* (`exc.exit_code`, :func:`exit_code_of`), never by class-name strings.
The one subclass that lives elsewhere is stereo.config.errors.SpecError (exit 2): it carries the spec's
list of Problems.

    StereoError (1)                         a genuine failure while running
    ├── BadInputError (2), a ValueError     the user's input is wrong; the message names the file:line or
    │   ├── DataError                       key, the value and the fix
    │   ├── ExportError                     (SpecError in stereo.config.errors)
    │   ├── EngineRequestError
    │   └── SizeMismatchError
    ├── CheckpointError (2)                 a checkpoint file that is missing, unreadable, unsafe or does
    │   ├── CheckpointNotFoundError         not fit the model (the user's file; not a ValueError: callers
    │   ├── CheckpointFormatError           catch these by type)
    │   ├── UnsafeCheckpointError
    │   └── CheckpointMismatchError
    ├── PretrainedLoadError (1)             pretrained backbone weights do not fit
    ├── NonFiniteLossError (1)              the training loss became NaN/inf
    └── ActionError (1, or the code of its cause)   an action failed: the one line the CLI prints

A FileNotFoundError that is not ours (a path the user gave) also exits 2; anything else exits 1.
"""
from __future__ import annotations

from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


class StereoError(Exception):
    """Base class of stereo's own errors; `exit_code` is what the CLI exits with."""
    exit_code: int = EXIT_FAILURE


class BadInputError(StereoError, ValueError):
    """The user's input is wrong (spec value, data file, checkpoint, results folder); exit code 2."""
    exit_code = EXIT_BAD_INPUT


# --- data --------------------------------------------------------------------------------------------
class DataError(BadInputError):
    """Unreadable or inconsistent data: a bad file, annotation line or setting; the message names the file
    (and line) and the fix."""
    exit_code = EXIT_BAD_INPUT


# --- checkpoints ---------------------------------------------------------------------------------------
class CheckpointError(StereoError):
    """Anything wrong with a checkpoint file or with fitting it to a model. The file is the user's input, so
    the CLI exits 2 (not a ValueError: callers catch these by type). Every message is one line naming the
    file (or the `what` of a load), the offending value and the fix; a mismatch adds the key lists."""
    exit_code = EXIT_BAD_INPUT


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path (or its JSON sidecar) does not exist."""
    exit_code = EXIT_BAD_INPUT


class CheckpointFormatError(CheckpointError):
    """The file is not a checkpoint we can read: unknown format, truncated or corrupt, no state dict."""
    exit_code = EXIT_BAD_INPUT


class UnsafeCheckpointError(CheckpointError):
    """The pickle references or calls a global outside the allow-list; nothing of it was executed."""
    exit_code = EXIT_BAD_INPUT


class CheckpointMismatchError(CheckpointError):
    """The state dict does not fit the model: missing, unexpected or shape-mismatched keys."""
    exit_code = EXIT_BAD_INPUT


# --- models and training -------------------------------------------------------------------------------
class PretrainedLoadError(StereoError, RuntimeError):
    """Pretrained backbone weights (DepthAnything-V2, EdgeNeXt) do not fit the backbone: the first few
    missing, unexpected or wrongly-shaped keys are listed."""
    exit_code = EXIT_FAILURE


class NonFiniteLossError(StereoError, FloatingPointError):
    """The training loss became NaN/inf; the message names the step, batch and samples."""
    exit_code = EXIT_FAILURE


# --- deploy -------------------------------------------------------------------------------------------
class ExportError(BadInputError):
    """An export request the graph cannot honour (size, batch, output file), or an ONNX sidecar we cannot
    read; the message names the `export.*` key and the fix."""
    exit_code = EXIT_BAD_INPUT


class EngineRequestError(BadInputError):
    """A TensorRT build request that cannot work (profile, precision, GPU, ONNX inputs), refused before the
    build starts; the message names the `gen_trt_engine.*` key and the fix."""
    exit_code = EXIT_BAD_INPUT


class SizeMismatchError(BadInputError):
    """An image whose size the deployed graph cannot take under `on_size_mismatch` (or an unknown policy)."""
    exit_code = EXIT_BAD_INPUT


# --- actions ------------------------------------------------------------------------------------------
class ActionError(StereoError, RuntimeError):
    """An action failed; ``str()`` is the one line the CLI prints. The original is the ``__cause__``.

    `exit_code` is 1, or 2 when the cause was bad input (set per instance by the runner, which knows the
    cause); `result` is the action's FAILURE ActionResult (stereo.actions.runner)."""
    exit_code = EXIT_FAILURE

    def __init__(self, action: str, category: str, message: str, exit_code: int = EXIT_FAILURE,
                 result: Any = None):
        super().__init__(f"{action} failed ({category}): {message}")
        self.action, self.category, self.message = action, category, message
        self.exit_code, self.result = exit_code, result

    def __reduce__(self):
        # Ray (and multiprocessing) copy exceptions by pickle; the default rebuilds from str(self) alone
        return (type(self), (self.action, self.category, self.message, self.exit_code, self.result))


def exit_code_of(exc: BaseException) -> int:
    """The exit code for `exc`, by type: a StereoError's `exit_code` (2 for bad input, 1 for failures); 2 for
    any other FileNotFoundError (a path the user gave); else 1."""
    if isinstance(exc, StereoError):
        return exc.exit_code if exc.exit_code in (EXIT_FAILURE, EXIT_BAD_INPUT) else EXIT_FAILURE
    if isinstance(exc, FileNotFoundError):
        return EXIT_BAD_INPUT
    return EXIT_FAILURE
