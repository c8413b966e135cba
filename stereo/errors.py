"""The exceptions every layer of stereo raises, each with the exit code the CLI turns it into.

This module sits at the bottom of the package (it imports nothing of stereo), so the data readers, the
spec loader, the checkpoint readers and the actions all raise subclasses of these two, and the CLIs map
an exception to its exit code by *type* (:func:`exit_code_of`), never by class-name strings.

* exit 2 (:class:`BadInputError` and its subclasses: SpecError, DataError, CheckpointError, ...): the
  user's input is wrong: a spec value, a missing or unreadable data file, a checkpoint that does not fit.
  The message is one line naming the file:line or key, the value and the fix.
* exit 1 (:class:`StereoError` and anything else): a genuine failure while running.
"""
from __future__ import annotations

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


class StereoError(Exception):
    """Base class of stereo's own errors; `exit_code` is what the CLI exits with."""
    exit_code: int = EXIT_FAILURE


class BadInputError(StereoError, ValueError):
    """The user's input is wrong (spec value, data file, checkpoint, results folder); exit code 2."""
    exit_code = EXIT_BAD_INPUT


def exit_code_of(exc: BaseException) -> int:
    """2 for bad input (our BadInputError family, or a FileNotFoundError: a path the user gave), else 1.

    An exception that carries an instance `exit_code` (stereo.actions.runner.ActionError) keeps it.
    """
    code = getattr(exc, "exit_code", None)
    if isinstance(exc, StereoError) and code in (EXIT_FAILURE, EXIT_BAD_INPUT):
        return code
    if isinstance(exc, FileNotFoundError):
        return EXIT_BAD_INPUT
    return EXIT_FAILURE
