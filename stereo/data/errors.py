"""The one exception type of the data layer: a bad file, annotation line or setting, with the fix."""
from __future__ import annotations

from stereo.errors import BadInputError


class DataError(BadInputError):
    """Raised for unreadable or inconsistent data; the message names the file (and line) and the fix.
    Bad input: exit code 2."""
