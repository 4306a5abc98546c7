"""Reading the profiles stage's YAML files with errors a person can act on."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TypeVar

import duckdb
from pydantic import BaseModel

from cdp_pipelines import config_files
from cdp_pipelines.vocabulary import STANDARDIZED_COLUMNS

CANONICAL_ATTRIBUTES = STANDARDIZED_COLUMNS
SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Model = TypeVar("Model", bound=BaseModel)


class ProfilesConfigError(ValueError):
    """A readable problem with a profiles configuration file or input (no traceback for users)."""


def load_yaml_model(path: Path, model: type[Model]) -> Model:
    """Parse and validate one profiles YAML file, naming the file and the offending keys on failure."""
    return config_files.load_yaml_model(path, model, ProfilesConfigError)




def table_columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> set[str] | None:
    """Column names of schema.table, or None when the table does not exist."""
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchall()
    return {name for (name,) in rows} or None
