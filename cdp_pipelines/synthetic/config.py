"""Load the generator's declarative configuration (all rates live in config/generator.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cdp_pipelines import settings
from cdp_pipelines.config_files import read_yaml_mapping


def default_config_path() -> Path:
    """The generator.yaml in the configured config folder, so CDP_CONFIG_DIR is honoured."""
    return settings.config_dir() / "generator.yaml"


class GeneratorConfigError(ValueError):
    """generator.yaml cannot be read (no traceback for users)."""


def load_config(path: Path | None = None) -> dict[str, Any]:
    """Read the YAML file as plain nested dicts; validation happens where values are used."""
    return read_yaml_mapping(path or default_config_path(), GeneratorConfigError)
