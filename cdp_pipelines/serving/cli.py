"""`cdp serving ...` (init, publish, rollback, status) and `cdp lookup`: the serving store from
the command line. Every failure a user can fix is one readable line and exit code 2."""

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from cdp_pipelines import settings
from cdp_pipelines.serving.lookup import lookup as lookup_customers
from cdp_pipelines.serving.normalize import IDENTIFIER_TYPES
from cdp_pipelines.serving.postgres import ServingError
from cdp_pipelines.serving.publish import publish as publish_tables
from cdp_pipelines.serving.schema import init_serving
from cdp_pipelines.serving.versions import current_version, rollback as rollback_version
from cdp_pipelines.standardize.identifiers import UnusableIdentifierError, standardized_identifier
from cdp_pipelines.warehouse_access import WarehouseAccessError, open_warehouse_read_only

app = typer.Typer(help="Publish to and manage the PostgreSQL serving store.", no_args_is_help=True)
console = Console(stderr=True)

UrlOption = Annotated[Optional[str], typer.Option("--url", help="PostgreSQL URL (default: $CDP_SERVING_URL).")]


def _url(url: str | None) -> str:
    resolved = url or settings.serving_url()
    if not resolved:
        console.print(f"[bold red]error:[/] no serving URL: pass --url or set {settings.ENV_SERVING_URL}",
                      soft_wrap=True)
        raise typer.Exit(2)
    return resolved


def _fail(error: Exception) -> None:
    console.print(f"[bold red]error:[/] {error}", soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def init(url: UrlOption = None) -> None:
    """Create the schemas and the read-only roles (idempotent)."""
    try:
        init_serving(_url(url))
    except ServingError as error:
        _fail(error)
    console.print("serving store initialised")


@app.command()
def publish(
    url: UrlOption = None,
    warehouse: Annotated[Optional[Path], typer.Option(help="DuckDB warehouse file.")] = None,
) -> None:
    """Publish the warehouse's current profiles and context as a new version."""
    try:
        con = open_warehouse_read_only(warehouse)
    except WarehouseAccessError as error:
        _fail(error)
    try:
        with console.status("publishing ..."):
            result = publish_tables(_url(url), con)
    except ServingError as error:
        _fail(error)
    finally:
        con.close()
    print(json.dumps({"version": result.version, "schema": result.schema, "seconds": result.seconds,
                      "row_counts": result.row_counts}, indent=2))


@app.command()
def rollback(url: UrlOption = None) -> None:
    """Point channel systems back at the previous published version."""
    try:
        version = rollback_version(_url(url))
    except ServingError as error:
        _fail(error)
    console.print(f"now serving version {version}")


@app.command()
def status(url: UrlOption = None) -> None:
    """Show the version channel systems currently read."""
    try:
        version = current_version(_url(url))
    except ServingError as error:
        _fail(error)
    print(json.dumps({"current_version": version}))


def lookup(
    phone: Annotated[Optional[str], typer.Option(help="Phone number in any common format.")] = None,
    email: Annotated[Optional[str], typer.Option(help="Email address.")] = None,
    card: Annotated[Optional[str], typer.Option(help="Loyalty card number.")] = None,
    cookie: Annotated[Optional[str], typer.Option(help="Web cookie id.")] = None,
    order: Annotated[Optional[str], typer.Option(help="Order number.")] = None,
    account: Annotated[Optional[str], typer.Option(help="CRM account id.")] = None,
    url: UrlOption = None,
    region: Annotated[str, typer.Option(help="Region for phone numbers without a country code.")] = "GB",
) -> None:
    """Find a customer by any identifier and print their context as JSON (exit 1 when none matches)."""
    given = {"phone": phone, "email": email, "card": card, "cookie": cookie, "order": order, "account": account}
    if not any(given.values()):
        console.print("[bold red]error:[/] give at least one of --phone, --email, --card, --cookie, --order, --account")
        raise typer.Exit(2)
    for keyword, value in given.items():
        if value is not None:
            try:
                standardized_identifier(IDENTIFIER_TYPES[keyword], value, region)
            except UnusableIdentifierError as error:
                _fail(error)
    try:
        customers = lookup_customers(_url(url), default_region=region, **given)
    except ServingError as error:
        _fail(error)
    print(json.dumps(customers, indent=2, default=str))
    if not customers:
        raise typer.Exit(1)
