"""`cdp segments`: list the declared segments, check their rules, export one to a file.

Mistakes a user can fix (bad definition, unknown segment, missing warehouse) print one line and
exit with code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import duckdb
import typer
from rich.console import Console
from rich.table import Table

from cdp_pipelines import settings
from cdp_pipelines.segments.build import latest_builds, member_counts, segment_status, validate_segment
from cdp_pipelines.segments.config import SEGMENTS_FILE, SegmentConfigError, SegmentsConfig, load_segments
from cdp_pipelines.segments.export import EXPORT_FORMATS, export_segment
from cdp_pipelines.segments.validation import validate_rule
from cdp_pipelines.warehouse_access import WarehouseAccessError, open_warehouse_read_only

EXIT_USAGE = 2

app = typer.Typer(help="Segments: audiences declared in config/segments.yaml, exported with consent enforced.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
errors = Console(stderr=True)

ConfigOption = Annotated[Optional[Path], typer.Option("--config", help="Segments file (default config/segments.yaml).")]
WarehouseOption = Annotated[Optional[Path], typer.Option("--warehouse", help="DuckDB warehouse file.")]


def _fail(message: str) -> None:
    errors.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(EXIT_USAGE)


def _load(config: Path | None) -> SegmentsConfig:
    path = config or settings.config_dir() / SEGMENTS_FILE
    try:
        loaded = load_segments(path)
        for segment in loaded.segments:
            validate_rule(segment.name, segment.rule)
    except SegmentConfigError as error:
        _fail(str(error))
    return loaded


def _connect(warehouse: Path | None, required: bool = True) -> duckdb.DuckDBPyConnection | None:
    path = warehouse or settings.warehouse_path()
    if not path.exists() and not required:
        return None
    try:
        return open_warehouse_read_only(path)
    except WarehouseAccessError as error:
        _fail(str(error))


@app.command("list")
def list_segments(config: ConfigOption = None, warehouse: WarehouseOption = None) -> None:
    """Show every segment: name, channel, owner, member count and whether that count is current.

    With a warehouse, a segment whose rule or channel changed since its build is marked stale and
    one whose rule no longer binds is marked invalid; then the command exits with code 1."""
    loaded = _load(config)
    con = _connect(warehouse, required=False)
    try:
        counts = member_counts(con) if con is not None else {}
        builds = latest_builds(con) if con is not None else {}
        statuses = {s.name: segment_status(con, s, builds.get(s.name)) if con is not None else "no warehouse"
                    for s in loaded.segments}
    finally:
        if con is not None:
            con.close()
    table = Table("name", "channel", "owner", "members", "status")
    for segment in loaded.segments:
        members = counts.get(segment.name)
        table.add_row(segment.name, segment.channel, segment.owner, "-" if members is None else f"{members:,}",
                      statuses[segment.name])
    Console(width=200).print(table)
    outdated = [name for name, status in statuses.items() if status.startswith(("stale", "invalid"))]
    if outdated:
        errors.print(f"{len(outdated)} segment(s) stale or invalid ({', '.join(outdated)}): their member counts "
                     "are not current; fix the rule or run `cdp run`", soft_wrap=True)
        raise typer.Exit(1)


@app.command()
def validate(config: ConfigOption = None, warehouse: WarehouseOption = None) -> None:
    """Check every rule; with a warehouse, also evaluate it over its real tables, as `cdp run` will."""
    loaded = _load(config)
    con = _connect(warehouse, required=False)
    try:
        for segment in loaded.segments:
            if con is not None:
                validate_segment(con, segment)
    except SegmentConfigError as error:
        _fail(str(error))
    finally:
        if con is not None:
            con.close()
    where = "against the warehouse" if con is not None else "syntax, tables and functions only (no warehouse)"
    typer.echo(f"{len(loaded.segments)} segment(s) valid: {where}")


@app.command()
def export(
    name: Annotated[str, typer.Argument(help="The segment to export.")],
    out: Annotated[Path, typer.Option("--out", help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", help=f"One of: {', '.join(EXPORT_FORMATS)}.")] = "csv",
    warehouse: WarehouseOption = None,
    config: ConfigOption = None,
) -> None:
    """Write a built segment's consented members to a CSV or Parquet file."""
    if fmt not in EXPORT_FORMATS:
        _fail(f"unknown format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    loaded = _load(config)
    try:
        segment = loaded.get(name)
    except SegmentConfigError as error:
        _fail(str(error))
    con = _connect(warehouse)
    try:
        result = export_segment(con, segment, loaded, out, fmt)
    except SegmentConfigError as error:
        _fail(str(error))
    except duckdb.Error as error:
        _fail(f"segment {name!r}: export failed: {str(error).splitlines()[0]}")
    finally:
        con.close()
    typer.echo(f"{result.rows} row(s) of {name} ({', '.join(result.columns)}) -> {result.path}")
