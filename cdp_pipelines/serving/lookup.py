"""lookup: every matching customer's context for an identifier, in one SQL round trip."""

from __future__ import annotations

from functools import lru_cache

import psycopg

from cdp_pipelines.serving.config import load_config
from cdp_pipelines.serving.lookup_sql import call_sql
from cdp_pipelines.serving.normalize import normalize_identifiers
from cdp_pipelines.serving.postgres import connect


def lookup(
    url_or_conn: str | psycopg.Connection,
    *,
    phone: str | None = None,
    email: str | None = None,
    card: str | None = None,
    cookie: str | None = None,
    order: str | None = None,
    account: str | None = None,
    web_user: str | None = None,
    social: str | None = None,
    default_region: str = "GB",
    stable_schema: str | None = None,
) -> list[dict]:
    """Customers matching ANY of the given identifiers, each with profile and context.

    More than one result means the identifier is shared (e.g. a household phone): the channel
    must disambiguate. Returns [] when nothing matches or every input normalises to nothing.
    """
    pairs = normalize_identifiers(
        {"phone": phone, "email": email, "card": card, "cookie": cookie, "order": order,
         "account": account, "web_user": web_user, "social": social},
        default_region,
    )
    if not pairs:
        return []
    schema = stable_schema or _default_stable_schema()
    if isinstance(url_or_conn, str):
        with connect(url_or_conn, autocommit=True) as conn:
            return run_lookup(conn, pairs, schema)
    return run_lookup(url_or_conn, pairs, schema)


@lru_cache(maxsize=1)
def _default_stable_schema() -> str:
    return load_config().stable_schema


def run_lookup(conn: psycopg.Connection, pairs: list[tuple[str, str]], stable_schema: str) -> list[dict]:
    """Send the already-normalised (identifier_type, value) pairs; one statement, one round trip."""
    types = [t for t, _ in pairs]
    values = [v for _, v in pairs]
    with conn.cursor() as cur:
        cur.execute(call_sql(stable_schema), [types, values], prepare=True)
        return [row[0] for row in cur.fetchall()]

