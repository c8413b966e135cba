"""Typed, validated TAO-compatible specs (OmegaConf structured configs)."""
