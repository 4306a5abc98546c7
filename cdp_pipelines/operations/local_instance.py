"""The local Dagster instance: Dagster's SQLite storage, with the event log's connections kept open.

Why: Dagster's SQLite event log builds a new SQLAlchemy engine, opens the database file, checks
its tables and closes everything again for every event it stores, and a run of the whole graph
stores hundreds of events (several per step, more for checks and materializations), each while
holding the storage's lock, so the step threads queue behind it. On the committed sample that
overhead was a third of the run's wall time. PooledSqliteEventLogStorage keeps one open
connection per database file (the index and the most recently used run shards) and remembers
which tables exist; the files, their schema and every query are Dagster's own, so the webserver,
the daemon and Dagster's plain SQLite storage read and write the same history.

Its connections also commit with `synchronous=NORMAL`. Dagster keeps these files in WAL mode,
where SQLite's default (FULL) flushes the log to disk at every commit, once per event, with the
storage's lock held; NORMAL flushes at checkpoints only. The files stay consistent after a crash
of the machine; what can be lost then is the last events before it, of a run the crash ended.

`dagster.yaml` selects LocalDagsterInstance (runner.LOCAL_INSTANCE_YAML): a DagsterInstance whose
default storage, used when the file configures none, is this one under the instance's own folder,
exactly where Dagster's default keeps its files. A `storage:` block (PostgreSQL in production,
deploy/dagster.yaml) still replaces it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import dagster as dg
import sqlalchemy as db
import yaml
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

OPEN_RUN_SHARDS = 16
"""Run databases kept open besides the index: a run writes only its own, and a webserver showing
many runs must not hold a file handle for each of them."""


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage with one open connection per database file instead of one per call.

    Every use of a connection happens under the storage's lock (Dagster's own design: the lock
    is what keeps two threads from using a file at once), so one connection per file, shared by
    the threads in turn, is enough.
    """

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._tables_present: set[str] = set()
        super().__init__(base_dir, inst_data=inst_data)

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
        db.event.listen(engine, "connect", _commit_without_flush)
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


def _commit_without_flush(dbapi_connection, _record) -> None:
    """See the module docstring: events are committed without waiting for the disk."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


class PooledSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage (runs, event logs, schedules under one folder, in Dagster's own
    layout) with the pooled event log."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        # DagsterSqliteStorage.__init__ would open the plain event log as well: set the same
        # members here, in Dagster's folder layout, with the pooled event log in its place.
        self.base_dir = base_dir
        self._run_storage = SqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        DagsterStorage.__init__(self)

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> PooledSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)

    @property
    def event_storage_data(self) -> ConfigurableClassData:
        return _class_data(PooledSqliteEventLogStorage, _event_logs_directory(self.base_dir))


def _class_data(cls: type, base_dir: str) -> ConfigurableClassData:
    return ConfigurableClassData(cls.__module__, cls.__name__, yaml.dump({"base_dir": base_dir}, default_flow_style=False))


class LocalDagsterInstance(dg.DagsterInstance):
    """A DagsterInstance whose default storage is PooledSqliteStorage in the instance's folder.

    Only the defaults differ: everything dagster.yaml configures (storage, run launcher,
    telemetry...) is taken as Dagster takes it."""

    @classmethod
    def config_schema(cls) -> dict:
        return {}

    @staticmethod
    def config_defaults(base_dir: str) -> Mapping[str, ConfigurableClassData | None]:
        return {
            **InstanceRef.config_defaults(base_dir),
            "storage": _class_data(PooledSqliteStorage, base_dir),
            "event_log_storage": _class_data(PooledSqliteEventLogStorage, _event_logs_directory(base_dir)),
        }
