"""copy_query streams a DuckDB query into PostgreSQL's COPY through a named pipe: every row
arrives, nothing is left in the temporary folder, and a failure on either side is raised
instead of leaving the other side waiting on the pipe."""

from __future__ import annotations

import os
import tempfile
import threading
import time

import duckdb
import psycopg
import pytest
from psycopg import sql

from cdp_pipelines.serving.duck_types import Column
from cdp_pipelines.serving.transfer import copy_query

from postgres_fixtures import fresh_database

COLUMNS = [Column("id", "BIGINT", "bigint", "id"), Column("note", "VARCHAR", "text", "note")]
ROWS = 300_000  # several megabytes: more than a pipe's buffer, so both sides must run at once


@pytest.fixture
def pg(postgres_server_url: str):
    name = f"cdp_test_transfer_{threading.get_ident()}_{id(object())}"
    with fresh_database(postgres_server_url, name) as url:
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE target (id bigint PRIMARY KEY, note text)")
            yield conn


def test_every_row_arrives_with_its_text_intact(pg, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # this test's own temporary folder
    duck = duckdb.connect()
    query = (f"SELECT i, CASE WHEN i % 7 = 0 THEN NULL WHEN i % 5 = 0 THEN 'tab\tand\nnewline\\\\' "
             f"ELSE 'row ' || i END FROM range({ROWS}) t(i)")
    copied = copy_query(duck, query, pg, sql.Identifier("target"), COLUMNS)
    assert copied == ROWS
    assert pg.execute("SELECT count(*), count(note) FROM target").fetchone() == (ROWS, ROWS - len(range(0, ROWS, 7)))
    assert pg.execute("SELECT note FROM target WHERE id = 5").fetchone() == ("tab\tand\nnewline\\\\",)
    assert pg.execute("SELECT note FROM target WHERE id = 1").fetchone() == ("row 1",)
    assert not list(tmp_path.iterdir())  # the pipe and its folder are removed


def test_without_named_pipes_a_temporary_file_carries_the_rows(pg, tmp_path, monkeypatch):
    monkeypatch.delattr(os, "mkfifo")  # as on a platform without named pipes
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    copied = copy_query(duckdb.connect(), "SELECT i, 'row ' || i FROM range(1000) t(i)", pg,
                        sql.Identifier("target"), COLUMNS)
    assert copied == 1000 == pg.execute("SELECT count(*) FROM target").fetchone()[0]
    assert not list(tmp_path.iterdir())


def _failure_within(seconds: float, call) -> BaseException | None:
    """What `call` raised, None if it returned; fails the test if it has not ended in `seconds`
    (a side left waiting on the pipe would otherwise hang the test run)."""
    finished, failure = threading.Event(), []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            failure.append(exc)
        finished.set()

    threading.Thread(target=run, daemon=True).start()
    assert finished.wait(seconds), "copy_query did not return: one side is still waiting on the pipe"
    return failure[0] if failure else None


def test_a_failing_duckdb_query_is_raised_and_the_reader_ends(pg):
    duck = duckdb.connect()
    failure = _failure_within(30, lambda: copy_query(
        duck, "SELECT * FROM no_such_table", pg, sql.Identifier("target"), COLUMNS))
    assert isinstance(failure, duckdb.CatalogException) and "no_such_table" in str(failure)
    assert not [t for t in threading.enumerate() if t.name == "cdp-serving-copy"]


def test_rows_postgresql_refuses_are_raised_and_duckdb_is_not_left_writing(pg):
    duck = duckdb.connect()
    # Every id twice: the primary key refuses the copy part-way, while DuckDB still has rows to write.
    query = f"SELECT i % {ROWS // 2}, 'row ' || i FROM range({ROWS}) t(i)"
    failure = _failure_within(60, lambda: copy_query(duck, query, pg, sql.Identifier("target"), COLUMNS))
    assert isinstance(failure, psycopg.errors.UniqueViolation)


def test_a_connection_lost_mid_copy_is_the_error_raised(pg, postgres_server_url):
    """The reader keeps draining the pipe after PostgreSQL's connection breaks, so DuckDB ends
    its write normally and the error raised is the connection's, not a broken pipe in DuckDB."""
    duck = duckdb.connect()
    pid = pg.info.backend_pid
    query = "SELECT i, repeat('x', 200) FROM range(4000000) t(i)"  # ~800 MB: the copy is still running
    copying = threading.Event()

    def terminate_once_copying() -> None:
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            for _ in range(600):
                state = admin.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
                if state and state[0].startswith("COPY"):
                    copying.set()
                    admin.execute("SELECT pg_terminate_backend(%s)", [pid])
                    return
                time.sleep(0.05)

    killer = threading.Thread(target=terminate_once_copying, daemon=True)
    killer.start()
    failure = _failure_within(120, lambda: copy_query(duck, query, pg, sql.Identifier("target"), COLUMNS))
    killer.join(5)
    assert copying.is_set()
    assert isinstance(failure, psycopg.OperationalError), repr(failure)
