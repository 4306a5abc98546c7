"""Reading the project's YAML configuration with errors a person can act on.

Every stage declares its settings as pydantic models; this is the one place that turns a missing
file, unreadable bytes, broken YAML or a validation error into a single line naming the file and
the keys. Settings models derive from `StrictModel`, so a misspelled key is refused rather than
silently replaced by its default.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

Model = TypeVar("Model", bound=BaseModel)

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML was built with it: the same documents and error marks,
parsed about ten times faster (a run reads its configuration files in many steps)."""


def load_yaml(text: str) -> Any:
    """The YAML document in `text`, as `yaml.safe_load` reads it."""
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader


class StrictModel(BaseModel):
    """Settings that refuse keys they do not declare: a typo must not fall back to a default."""

    model_config = ConfigDict(extra="forbid")


class Named(dict):
    """In a key layout (`keys_model`): a mapping of names the user chooses (tables, suites), each
    holding the keys of this layout."""


KeyLayout = Mapping[str, "KeyLayout | None"]


def keys_model(name: str, layout: KeyLayout) -> type[StrictModel]:
    """A model that accepts exactly the keys of `layout`, for files whose values a stage reads
    itself: each key maps to None (any value), a nested layout (a section) or a `Named` layout.
    Validating a file with it refuses a misspelled key, naming the keys allowed there."""
    fields: dict[str, Any] = {}
    for key, inner in layout.items():
        annotation: Any = Any
        if isinstance(inner, Named):
            annotation = dict[str, keys_model(f"{name}_{key}", inner) | None] | None
        elif inner is not None:
            annotation = keys_model(f"{name}_{key}", inner) | None
        fields[key] = (annotation, None)
    return create_model(name, __base__=StrictModel, **fields)


def yaml_problem(problem: yaml.YAMLError) -> str:
    """The parser's complaint on one line, with the line and column it points at."""
    if isinstance(problem, yaml.MarkedYAMLError) and problem.problem_mark is not None:
        mark = problem.problem_mark
        text = f"{problem.problem} (line {mark.line + 1}, column {mark.column + 1})"
        if problem.context and problem.context_mark is not None:
            text += (f", {problem.context} at line {problem.context_mark.line + 1}, "
                     f"column {problem.context_mark.column + 1}")
        return text
    return " ".join(str(problem).split())


def read_yaml_mapping(path: Path, error: type[Exception]) -> dict:
    """The YAML file's top-level mapping ({} when empty); `error` names the file otherwise."""
    try:
        content = load_yaml(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, expected a YAML file") from None
    except PermissionError:
        raise error(f"{path}: cannot be read (permission denied)") from None
    except OSError as problem:
        raise error(f"{path}: cannot be read ({problem.strerror or problem})") from None
    except UnicodeDecodeError as problem:
        raise error(f"{path}: not UTF-8 text (byte 0x{problem.object[problem.start]:02x} at offset "
                    f"{problem.start}); save the file as UTF-8") from None
    except yaml.YAMLError as problem:
        raise error(f"{path}: not valid YAML: {yaml_problem(problem)}") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise error(f"{path}: expected a mapping of settings at the top level")
    return content


def _unwrap_optional(annotation: Any) -> Any:
    """`X | None` -> X; any other annotation unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(annotation) if m is not type(None)]
        return members[0] if len(members) == 1 else annotation
    return annotation


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The settings model found by following `loc` (field names, list positions, mapping keys)
    from `model`, or None when the path leads elsewhere."""
    current: Any = model
    for step in loc:
        current = _unwrap_optional(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(step) if isinstance(step, str) else None
            if field is None:
                return None
            current = field.annotation
        elif typing.get_origin(current) is list and isinstance(step, int):
            current = typing.get_args(current)[0]
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        else:
            return None
    current = _unwrap_optional(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _message(item: dict, model: type[BaseModel] | None) -> str:
    if item["type"] == "extra_forbidden":
        parent = _model_at(model, tuple(item["loc"][:-1])) if model else None
        allowed = f"; allowed: {', '.join(parent.model_fields)}" if parent else ""
        return f"unknown key (misspelled?){allowed}"
    return item["msg"].removeprefix("Value error, ")


def describe_validation_error(path: Path, problem: ValidationError, model: type[BaseModel] | None = None) -> str:
    """One line: the file, then each offending key path and what is wrong with it (for an
    unknown key, the keys allowed there when `model` is given)."""
    parts = [
        f"{'.'.join(str(p) for p in item['loc']) or '(top level)'}: {_message(item, model)}"
        for item in problem.errors()
    ]
    return f"{path}: " + "; ".join(parts)


def validate_mapping(path: Path, content: Any, model: type[Model], error: type[Exception]) -> Model:
    """`content` (read from `path`) validated into `model`, raising `error` with a readable message."""
    try:
        return model.model_validate(content)
    except ValidationError as problem:
        message = describe_validation_error(path, problem, model)
    # Raised outside the handler: the validation error (and through a validator's own exception,
    # the frames of the step that loaded the file, DuckDB objects included) is then not kept
    # alive as this error's context for as long as the run's record of the failure lives.
    raise error(message)


def load_yaml_model(path: Path, model: type[Model], error: type[Exception]) -> Model:
    """Parse and validate one YAML file into `model`, raising `error` with a readable message."""
    return validate_mapping(path, read_yaml_mapping(path, error), model, error)
