"""Reading the profiles stage's YAML files with errors a person can act on, and SQL quoting."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TypeVar

import duckdb
import yaml
from pydantic import BaseModel, ValidationError

from cdp_pipelines.vocabulary import STANDARDIZED_COLUMNS

CANONICAL_ATTRIBUTES = STANDARDIZED_COLUMNS
SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Model = TypeVar("Model", bound=BaseModel)


class ProfilesConfigError(ValueError):
    """A readable problem with a profiles configuration file or input (no traceback for users)."""


def load_yaml_model(path: Path, model: type[Model]) -> Model:
    """Parse and validate one YAML file, naming the file and the offending keys on failure."""
    try:
        content = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ProfilesConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as error:
        raise ProfilesConfigError(f"{path}: not valid YAML: {error}") from None
    try:
        return model.model_validate(content)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or '(top level)'}: {item['msg']}" for item in error.errors()
        )
        raise ProfilesConfigError(f"{path}: {problems}") from None


def literal(value: str) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def quoted(name: str) -> str:
    """A SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def table_columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> set[str] | None:
    """Column names of schema.table, or None when the table does not exist."""
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchall()
    return {name for (name,) in rows} or None
