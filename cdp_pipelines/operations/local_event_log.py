"""The local Dagster instance's event log: Dagster's SQLite storage, with its connections kept open.

Why: Dagster's SQLite event log builds a new SQLAlchemy engine, opens the database file, checks
its tables and closes everything again for every event it stores, and a run of the whole graph
stores hundreds of events (several per step, more for checks and materializations), each while
holding the storage's lock, so the step threads queue behind it. On the committed sample that
overhead was a third of the run's wall time. This class keeps one open connection per database
file (the index and the most recently used run shards) and remembers which tables exist; the
files, their schema and every query are Dagster's own, so the webserver, the daemon and Dagster's
own SQLite storage read and write the same history.

The instance uses it through `dagster.yaml` (runner.LOCAL_INSTANCE_YAML). Production keeps its
history in PostgreSQL (deploy/dagster.yaml) and is not affected.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as db
from dagster import Field, StringSource
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

OPEN_RUN_SHARDS = 16
"""Run databases kept open besides the index: a run writes only its own, and a webserver showing
many runs must not hold a file handle for each of them."""


def default_base_dir() -> str:
    """Where Dagster's default SQLite storage keeps event logs: $DAGSTER_HOME/history/runs."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise ValueError("DAGSTER_HOME is not set: the local event log lives under it (history/runs)")
    return os.path.join(home, "history", "runs")


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage with one open connection per database file instead of one per call.

    Every use of a connection happens under the storage's lock (Dagster's own design: the lock
    is what keeps two threads from using a file at once), so one connection per file, shared by
    the threads in turn, is enough.
    """

    def __init__(self, base_dir: str | None = None, inst_data=None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._tables_present: set[str] = set()
        super().__init__(base_dir or default_base_dir(), inst_data=inst_data)

    @classmethod
    def config_type(cls):
        return {"base_dir": Field(StringSource, is_required=False,
                                  description="Folder of the SQLite files (default $DAGSTER_HOME/history/runs).")}

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine_for(self, shard: str) -> Engine:
        """The shard's engine (caller holds the lock), opening it and closing the least recently
        used run shard past OPEN_RUN_SHARDS."""
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = db.create_engine(
            self.conn_string_for_shard(shard),
            poolclass=StaticPool,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        self._engines[shard] = engine
        runs_open = [s for s in self._engines if s != INDEX_SHARD_NAME]
        for stale in runs_open[: max(0, len(runs_open) - OPEN_RUN_SHARDS)]:
            self._engines.pop(stale).dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine_for(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn

    def has_table(self, table_name: str) -> bool:
        """Dagster asks this for every asset and check event; a table, once there, stays."""
        if table_name in self._tables_present:
            return True
        present = super().has_table(table_name)
        if present:
            self._tables_present.add(table_name)
        return present

    def _close_all(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()
            self._tables_present.clear()

    def wipe(self) -> None:
        self._close_all()  # the run files are deleted: no connection may stay open on them
        super().wipe()

    def upgrade(self) -> None:
        self._close_all()
        super().upgrade()

    def dispose(self) -> None:
        super().dispose()
        self._close_all()
