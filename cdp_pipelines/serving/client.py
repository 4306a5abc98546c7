"""ServingClient: one long-lived connection for a channel process doing many lookups."""

from __future__ import annotations

from pathlib import Path

import psycopg

from cdp_pipelines.serving.config import load_config
from cdp_pipelines.serving.lookup import lookup
from cdp_pipelines.serving.postgres import connect


class ServingClient:
    """A single autocommit connection (no pool) with a prepared lookup statement.

    Reconnects once if the server dropped the connection. Not thread-safe: one per thread.
    """

    def __init__(self, url: str, *, default_region: str = "GB", config_path: Path | None = None):
        self.url = url
        self.default_region = default_region
        self.stable_schema = load_config(config_path).stable_schema
        self._conn: psycopg.Connection | None = None

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.url, autocommit=True)
        return self._conn

    def lookup(self, **identifiers: str | None) -> list[dict]:
        """Any combination of phone/email/card/cookie/order/account/web_user/social."""
        kwargs = dict(identifiers, default_region=self.default_region, stable_schema=self.stable_schema)
        try:
            return lookup(self.conn, **kwargs)
        except psycopg.OperationalError:
            self.close()
            return lookup(self.conn, **kwargs)

    def lookup_phone(self, value: str) -> list[dict]:
        return self.lookup(phone=value)

    def lookup_email(self, value: str) -> list[dict]:
        return self.lookup(email=value)

    def lookup_card(self, value: str) -> list[dict]:
        return self.lookup(card=value)

    def lookup_cookie(self, value: str) -> list[dict]:
        return self.lookup(cookie=value)

    def lookup_order(self, value: str) -> list[dict]:
        return self.lookup(order=value)

    def lookup_account(self, value: str) -> list[dict]:
        return self.lookup(account=value)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> ServingClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
