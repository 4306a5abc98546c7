"""lookup: every matching customer's context for an identifier, in one SQL round trip."""

from __future__ import annotations

import json
import re
from functools import lru_cache

import orjson
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
    """Send the already-normalised (identifier_type, value) pairs; one statement, one round trip.

    A prepared statement per number of pairs (psycopg prepares it on first use); the generic
    plan is kept by the server, so a lookup is not re-planned (see lookup_sql.call_sql).
    """
    params = [t for t, _ in pairs] + [v for _, v in pairs]
    cur = conn.execute(call_sql(stable_schema, len(pairs)), params, prepare=True)
    return [decode_document(text) for (text,) in cur.fetchall()]


_LONG_DIGIT_RUN = re.compile(r"[0-9]{19}")


def decode_document(text: str) -> dict:
    """One lookup document (JSON text) as a dict, exactly as json.loads returns it.

    orjson is several times faster than json on these ~0.5 KB documents, but turns an integer
    beyond 64 bits into a float. Integers are written as plain digits (by DuckDB when the
    document is built, by PostgreSQL for the per-call keys), so a number orjson could alter
    contains a run of 19+ digits: such documents (and any with a long digit run inside a string,
    harmlessly) go through json. Numbers with an exponent are floats for both decoders.
    """
    if _LONG_DIGIT_RUN.search(text):
        return json.loads(text)
    return orjson.loads(text)
