"""The one exception type of the data layer: a bad file, annotation line or setting, with the fix."""
from __future__ import annotations


class DataError(ValueError):
    """Raised for unreadable or inconsistent data; the message names the file (and line) and the fix."""
