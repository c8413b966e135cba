"""FoundationStereo (NVlabs and TAO variants)."""
from stereo.models.fs.model import DEAD_KEY_PREFIXES, FoundationStereo, resolve_attention_layout
from stereo.models.fs.presets import PRESETS, preset_config

__all__ = ["DEAD_KEY_PREFIXES", "PRESETS", "FoundationStereo", "preset_config", "resolve_attention_layout"]
