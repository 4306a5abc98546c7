"""Reading the project's YAML configuration with errors a person can act on.

Every stage declares its settings as pydantic models; this is the one place that turns a missing
file, broken YAML or a validation error into a single line naming the file and the keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


def read_yaml_mapping(path: Path, error: type[Exception]) -> dict:
    """The YAML file's top-level mapping ({} when empty); `error` names the file otherwise."""
    try:
        content = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except yaml.YAMLError as problem:
        raise error(f"{path}: not valid YAML: {problem}") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise error(f"{path}: expected a mapping of settings at the top level")
    return content


def describe_validation_error(path: Path, problem: ValidationError) -> str:
    """One line: the file, then each offending key path and what is wrong with it."""
    parts = [
        f"{'.'.join(str(p) for p in item['loc']) or '(top level)'}: {item['msg'].removeprefix('Value error, ')}"
        for item in problem.errors()
    ]
    return f"{path}: " + "; ".join(parts)


def load_yaml_model(path: Path, model: type[Model], error: type[Exception]) -> Model:
    """Parse and validate one YAML file into `model`, raising `error` with a readable message."""
    content = read_yaml_mapping(path, error)
    try:
        return model.model_validate(content)
    except ValidationError as problem:
        raise error(describe_validation_error(path, problem)) from None
