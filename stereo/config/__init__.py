"""Typed, validated TAO-compatible specs: dataclass sections, loading (`${...}` interpolation via OmegaConf,
then our own checks and builder), validation, JSON-schema generation."""
