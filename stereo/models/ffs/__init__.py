"""Fast-FoundationStereo (pruned bp2 structure)."""
from stereo.models.ffs.dead_keys import BP2_DEAD_KEYS, OPTIONAL_KEYS, dead_keys
from stereo.models.ffs.model import FastFoundationStereo
from stereo.models.ffs.widths import FFSWidths, resolve_widths

__all__ = ["FastFoundationStereo", "BP2_DEAD_KEYS", "OPTIONAL_KEYS", "dead_keys", "FFSWidths", "resolve_widths"]
