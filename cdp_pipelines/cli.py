"""The `cdp` command line: generate data, run the pipeline, evaluate and explain identities.

Stage-specific command groups (segments, serving, lookup) live beside their stage and are
mounted here. Errors a user can fix are printed as one readable line with exit code 2, also when
they stop a step of `cdp run`; a run that failed otherwise (a failed check, a bug) exits with 1.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from cdp_pipelines import settings
from cdp_pipelines.errors import user_error_in

app = typer.Typer(help="Customer data platform: one trusted view of each customer.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
console = Console(stderr=True)
EXIT_USAGE = 2
EXIT_FAILED = 1


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


def fail(message: str, code: int = EXIT_USAGE) -> None:
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def _apply_paths(data_dir: Path | None, warehouse: Path | None, sources: Path | None = None) -> None:
    """Point every component at the chosen folders through the environment, read once by settings."""
    if data_dir is not None:
        if not data_dir.is_dir():
            fail(f"data folder {data_dir} does not exist")
        os.environ[settings.ENV_DATA_DIR] = str(data_dir.resolve())
    if warehouse is not None:
        os.environ[settings.ENV_WAREHOUSE] = str(warehouse.resolve())
    if sources is not None:
        if not sources.is_file():
            fail(f"sources file {sources} does not exist")
        os.environ[settings.ENV_SOURCES_FILE] = str(sources.resolve())


def _open_warehouse(warehouse: Path | None):
    """Read-only warehouse connection, or one error line when the file cannot be opened."""
    from cdp_pipelines.warehouse_access import WarehouseAccessError, open_warehouse_read_only

    try:
        return open_warehouse_read_only(warehouse)
    except WarehouseAccessError as error:
        fail(str(error))


def _no_identity_results(warehouse: Path | None) -> str:
    return f"warehouse {warehouse or settings.warehouse_path()} holds no identity results; run `cdp run` first"


@app.command()
def generate(
    persons: Annotated[int, typer.Option(help="How many people to simulate (at least 100).")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 42,
    out: Annotated[Path, typer.Option(help="Folder for the source files.")] = Path("data/generated"),
    truth_out: Annotated[Optional[Path], typer.Option(help="Ground-truth CSV (default OUT/ground_truth.csv).")] = None,
) -> None:
    """Write realistic five-source omnichannel data with ground truth."""
    from cdp_pipelines.synthetic import generate_dataset
    from cdp_pipelines.synthetic.generator import SMALLEST_USABLE_POPULATION

    if persons < SMALLEST_USABLE_POPULATION:
        fail(f"--persons must be at least {SMALLEST_USABLE_POPULATION}: with fewer, some sources get no records, "
             "and the pipeline refuses a source file without records")
    if out.exists() and not out.is_dir():
        fail(f"--out {out} is a file; give a folder for the source files")
    if truth_out is not None and truth_out.is_dir():
        fail(f"--truth-out {truth_out} is a folder; give the path of the ground-truth CSV file")
    started = time.perf_counter()
    try:
        with console.status(f"Generating {persons:,} persons ..."):
            summary = generate_dataset(persons=persons, seed=seed, out_dir=out, truth_out=truth_out)
    except OSError as error:
        fail(f"cannot write {error.filename or out}: {error.strerror or error}")
    console.print(f"Wrote {out} in {time.perf_counter() - started:.1f}s")
    for name, count in summary.counts.items():
        console.print(f"  {name:<20} {count:>10,}")
    if summary.empty_sources:
        fail(f"no records for {', '.join(summary.empty_sources)}; the pipeline refuses a source file without "
             "records: generate more persons or use another seed")


@app.command()
def run(
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder with the source files (default: the sample).")] = None,
    warehouse: Annotated[Optional[Path], typer.Option(help="DuckDB warehouse file.")] = None,
    sources: Annotated[Optional[Path], typer.Option(help="Sources file (default data/sources.yaml).")] = None,
    retrain: Annotated[bool, typer.Option(help="Train a new identity model even if one is saved.")] = False,
    incremental: Annotated[bool, typer.Option(
        "--incremental",
        help="Read only files not ingested before (new or changed), standardize and link only the "
             "records they add or change, then refresh everything downstream. Without it: full refresh.",
    )] = False,
    max_concurrent: Annotated[Optional[int], typer.Option(
        min=1, help="Steps running at once on threads of this process (default 2; 1: one after another).",
    )] = None,
) -> None:
    """Materialize the whole graph in this process (steps on threads) on the embedded DuckDB warehouse.

    Runs the `full_refresh` job (every file read again), or with --incremental the `incremental` job.

    Runs are recorded in the Dagster instance at $DAGSTER_HOME (default data/dagster_home).
    """
    _apply_paths(data_dir, warehouse, sources)
    from cdp_pipelines.ingest.errors import SourcesConfigError
    from cdp_pipelines.runner import run_pipeline

    try:
        outcome = run_pipeline(incremental=incremental, retrain=retrain, console=console,
                               max_concurrent=max_concurrent)
    except SourcesConfigError as error:
        fail(str(error))
    print(json.dumps(outcome.summary, indent=2, default=str))
    if not outcome.success:
        raise typer.Exit(EXIT_USAGE if outcome.stopped_by_user_error else EXIT_FAILED)


@app.command()
def evaluate(
    truth: Annotated[Path, typer.Option(help="Ground-truth CSV: source,source_record_id,person_id.")],
    warehouse: Annotated[Optional[Path], typer.Option(help="DuckDB warehouse file.")] = None,
) -> None:
    """Print pairwise and B-cubed precision/recall/F1 of the resolved identities as JSON."""
    import duckdb

    from cdp_pipelines.identity.evaluation import TruthFileError, evaluate as evaluate_identities

    if not truth.exists():
        fail(f"truth file {truth} does not exist")
    con = _open_warehouse(warehouse)
    try:
        report = evaluate_identities(con, truth)
    except duckdb.CatalogException:
        fail(_no_identity_results(warehouse))
    except TruthFileError as error:
        fail(str(error))
    finally:
        con.close()
    print(json.dumps(report, indent=2))


@app.command()
def explain(
    customer_id: Annotated[str, typer.Argument(help="The customer id to explain.")],
    warehouse: Annotated[Optional[Path], typer.Option(help="DuckDB warehouse file.")] = None,
    show_pii: Annotated[bool, typer.Option(help="Show personal data unmasked.")] = False,
) -> None:
    """Show a customer's records and the edges (rules or match weights) that joined them."""
    import duckdb

    from cdp_pipelines.identity.explain import explain_customer, render_explanation

    con = _open_warehouse(warehouse)
    try:
        explanation = explain_customer(con, customer_id)
    except duckdb.CatalogException:
        fail(_no_identity_results(warehouse))
    finally:
        con.close()
    if explanation is None:
        fail(f"no customer {customer_id!r} in {warehouse or settings.warehouse_path()}")
    render_explanation(explanation, Console(), show_pii=show_pii or settings.show_pii())


def _mount_stage_commands() -> None:
    """Command groups that live beside their stage."""
    from importlib import import_module

    for module_name, attribute, name in (
        ("cdp_pipelines.segments.cli", "app", "segments"),
        ("cdp_pipelines.serving.cli", "app", "serving"),
    ):
        try:
            module = import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        app.add_typer(getattr(module, attribute), name=name)
    from cdp_pipelines.bench import bench_command
    from cdp_pipelines.profiles.cli import erase
    from cdp_pipelines.serving.cli import lookup

    app.command(name="erase")(erase)
    app.command(name="lookup")(lookup)
    app.command(name="bench")(bench_command)


_mount_stage_commands()


def main() -> None:
    message = None
    try:
        app()
    except UserError as error:
        message = str(error)
    except Exception as error:  # a configuration mistake wrapped by Dagster: one line, not a traceback
        mistake = user_error_in(error)
        if mistake is None:
            raise
        message = str(mistake)
        del mistake
    # Exit outside the handler and after a collection: the half-built definitions' reference
    # cycles hold DuckDB objects that would otherwise be reported as leaks at interpreter exit.
    if message is not None:
        gc.collect()
        console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
        sys.exit(EXIT_USAGE)


if __name__ == "__main__":
    main()
