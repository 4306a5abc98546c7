"""Load the generator's declarative configuration (all rates live in config/generator.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cdp_pipelines import settings


def default_config_path() -> Path:
    """The generator.yaml in the configured config folder, so CDP_CONFIG_DIR is honoured."""
    return settings.config_dir() / "generator.yaml"


def load_config(path: Path | None = None) -> dict[str, Any]:
    """Read the YAML file as plain nested dicts; validation happens where values are used."""
    with open(path or default_config_path(), encoding="utf-8") as handle:
        return yaml.safe_load(handle)
