"""The exceptions automl raises, on top of stereo's hierarchy (stereo/errors.py), each with its exit code.

The CLI maps an exception to its exit code by type (:func:`exit_code_of`), never by class name:

* exit 2 (:class:`AutomlInputError`, like stereo's ``BadInputError``): the options, the skill, the spec or
  the search space are wrong; the message names the option/file/key and the fix, and nothing has started.
* exit 1 (:class:`AutomlError`): a failure while running (a trial that cannot be scored, a run folder in
  use, a cluster whose nodes do not share the run folder, the UI that cannot start).
* exit 130: interrupted (Ctrl-C, SIGTERM); the CLI prints the resume command.
"""
from __future__ import annotations

from stereo.errors import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, BadInputError, StereoError
from stereo.errors import exit_code_of as _stereo_exit_code

EXIT_INTERRUPTED = 130
__all__ = ("EXIT_OK", "EXIT_FAILURE", "EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "AutomlError", "AutomlInputError",
           "LaunchError", "exit_code_of")


class AutomlError(StereoError, RuntimeError):
    """A failure while running a sweep or its tools; exit code 1."""


class AutomlInputError(BadInputError):
    """Bad options, skill, spec or search space; exit code 2, raised before anything heavy starts."""


class LaunchError(AutomlInputError):
    """A run that cannot be launched; the message names the option or key and the fix."""


def exit_code_of(exc: BaseException) -> int:
    """Our hierarchy's exit code; a ValueError that reaches the CLI is a value the user gave (2); else 1."""
    if isinstance(exc, StereoError):
        return _stereo_exit_code(exc)
    return EXIT_BAD_INPUT if isinstance(exc, ValueError) else _stereo_exit_code(exc)
