"""`cdp erase`: record an erasure request as hashes only; the next run removes the customer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from cdp_pipelines.profiles.config_files import ProfilesConfigError
from cdp_pipelines.profiles.suppression import add_erasure_request, suppression_file

app = typer.Typer(help="Erasure requests (right to be forgotten).", pretty_exceptions_enable=False,
                  add_completion=False)
"""Runs `erase` alone; the main CLI mounts the function itself, so `cdp erase` shows no subcommand usage."""
console = Console(stderr=True)


@app.command()
def erase(
    request_id: Annotated[str, typer.Option("--request-id", help="Reference of the erasure request (ticket id).")],
    email: Annotated[Optional[str], typer.Option(help="Email address to erase.")] = None,
    phone: Annotated[Optional[str], typer.Option(help="Phone number to erase.")] = None,
    card: Annotated[Optional[str], typer.Option(help="Loyalty card number to erase.")] = None,
    account: Annotated[Optional[str], typer.Option(help="CRM account id to erase.")] = None,
    region: Annotated[str, typer.Option(help="Region for phone numbers written without a country code.")] = "GB",
    suppression_list: Annotated[Optional[Path], typer.Option(
        "--suppression-file", help="Erasure list (default CDP_SUPPRESSION_FILE or data/suppression/erasure_requests.csv).")] = None,
) -> None:
    """Record an erasure request (right to be forgotten): the SHA-256 hash of each identifier
    given is appended to the erasure list; the identifiers themselves are not stored."""
    given = [(t, v) for t, v in (("email", email), ("phone", phone), ("loyalty_card", card), ("account_id", account)) if v]
    if not given:
        console.print("[bold red]error:[/] give at least one of --email, --phone, --card, --account")
        raise typer.Exit(2)
    path = suppression_list or suppression_file()
    try:
        recorded = [add_erasure_request(t, v, request_id, path=path, default_region=region) for t, v in given]
    except ProfilesConfigError as error:
        console.print(f"[bold red]error:[/] {error}", soft_wrap=True)
        raise typer.Exit(2)
    for request in recorded:
        console.print(f"recorded {request.request_id}: {request.identifier_type} {request.identifier_hash[:12]}… in {path}")
    console.print("The customer disappears from profiles, segments and serving on the next run.")
