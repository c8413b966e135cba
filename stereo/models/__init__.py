"""Stereo networks: FastFoundationStereo and FoundationStereo, built through one registry."""
from stereo.models.registry import build_model, create_model, list_models, preset_config, register_preset

__all__ = ["build_model", "create_model", "list_models", "preset_config", "register_preset"]
