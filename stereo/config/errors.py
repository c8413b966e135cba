"""Spec problems and the exception that carries all of them.

Validation never stops at the first mistake: every check appends a :class:`Problem`, and loading raises
one :class:`SpecError` holding them all, so a user fixes a spec in one round trip. Each problem renders
as ONE line that names where (file:line), what (the dotted key and the bad value) and the fix.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, List, Optional

from stereo.errors import EXIT_BAD_INPUT, BadInputError

ERROR = "error"
WARNING = "warning"
_MISSING = object()


@dataclass(frozen=True)
class Problem:
    """One finding about one key. `value` is the offending value (omitted from the line when MISSING)."""

    key: str
    value: Any
    message: str
    fix: str = ""
    severity: str = ERROR
    file: Optional[str] = None
    line: Optional[int] = None

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def located(self, file: Optional[str], line: Optional[int]) -> "Problem":
        """A copy with the source position filled in (keeps a position that is already known)."""
        return Problem(self.key, self.value, self.message, self.fix, self.severity,
                       self.file if self.file is not None else file,
                       self.line if self.line is not None else line)

    def render(self) -> str:
        where = self.file or "<spec>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        text = f"{where}: {self.key or '<root>'}: "
        if self.severity == WARNING:
            text += "warning: "
        text += self.message
        if self.value is not _MISSING:
            text += f" (got {_short(self.value)})"
        if self.fix:
            text += f"; fix: {self.fix}"
        return " ".join(text.split())  # one line, whatever the pieces contained

    def __str__(self) -> str:
        return self.render()


def missing_value() -> Any:
    """Sentinel for Problem.value when there is no value to show (e.g. a required key is absent)."""
    return _MISSING


class SpecError(BadInputError):
    """A spec has one or more errors; `problems` holds every finding (warnings included). Exit code 2."""
    exit_code = EXIT_BAD_INPUT

    def __init__(self, problems: Iterable[Problem]):
        self.problems: List[Problem] = sorted(problems, key=_order)
        errors = [p for p in self.problems if p.is_error]
        if not errors:
            raise ValueError("SpecError needs at least one error-severity Problem; warnings alone are not "
                             "an error")
        super().__init__("\n".join(p.render() for p in errors))

    def __reduce__(self):  # pickled by Ray / multiprocessing: rebuild from the problems, not the message
        return (type(self), (self.problems,))

    @property
    def errors(self) -> List[Problem]:
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> List[Problem]:
        return [p for p in self.problems if not p.is_error]


def _order(p: Problem) -> tuple:
    return (p.file or "", p.line if p.line is not None else 10 ** 9, p.key)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
