"""Refresh customer-keyed tables for the customers a run changed instead of for everyone.

Every build of `profiles.active_xref` is a *generation*. An incremental build compares itself
with the previous one and lists the customers whose records moved, appeared, disappeared or
changed content (`profiles.xref_changed_customers`); a full build lists nobody and forces every
table to rebuild. Each table refreshed this way remembers in `profiles.refresh_state` the
generation and the fingerprint (its SQL or configuration, its effective variables and the
fingerprints of the tables it reads) it was built from. In an incremental run a table then
deletes the rows of the customers changed since its generation and inserts them again computed
from their records alone, which is what a full rebuild would give for a table whose rows each
depend on one customer's records only. It rebuilds whole when its fingerprint moved, when a full
generation passed, when it has never been built, or when the changed customers are too many for
a partial refresh to pay off.

A table's blocking checks can then be scoped too: when its rows outside the refreshed customers
passed the checks last time (`checks_passed` in `profiles.refresh_state`, recorded by
`record_checks`), only the refreshed customers' rows need checking again.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import sqlglot
from sqlglot import exp

GENERATIONS = "profiles.xref_generations"
CHANGED = "profiles.xref_changed_customers"
CONSUMED = "profiles.xref_consumed_runs"
STATE = "profiles.refresh_state"
WORK_SCHEMA = "refresh_work"
# Above this share of a table's customers a whole rebuild is cheaper than delete-and-insert.
MAX_SCOPE_SHARE = 0.3
_ENSURED: "weakref.WeakSet[duckdb.DuckDBPyConnection]" = weakref.WeakSet()


@dataclass(frozen=True)
class RefreshPlan:
    """How one table is refreshed in this run."""

    target: str
    mode: str  # "full", "scoped" or "unchanged"
    reason: str
    generation: int | None
    fingerprint: str
    scope_table: str | None = None
    scope_customers: int = 0
    checks_trusted: bool = False
    """The rows outside the scope passed the table's checks when it was last refreshed."""

    @property
    def checks_scope(self) -> str | None:
        """The table of customers whose rows the checks must read, or None for every row."""
        return self.scope_table if self.mode != "full" and self.checks_trusted else None

    def metadata(self) -> dict:
        metadata: dict = {"refresh_mode": self.mode, "refresh_reason": self.reason}
        if self.mode != "full":
            metadata["customers_refreshed"] = self.scope_customers
        return metadata


def fingerprint(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:16]


def table_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, name = qualified.split(".")
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", [schema, name]
    ).fetchall()[0][0])


def customer_keyed(con: duckdb.DuckDBPyConnection, tables: Iterable[str]) -> set[str]:
    """Those of `tables` (schema.table) that exist and have a customer_id column, in one query."""
    wanted = sorted({t.lower() for t in tables})
    if not wanted:
        return set()
    rows = con.execute(
        "SELECT DISTINCT lower(schema_name || '.' || table_name) FROM duckdb_columns() "
        "WHERE column_name = 'customer_id' AND lower(schema_name || '.' || table_name) IN "
        f"({', '.join('?' for _ in wanted)})", wanted).fetchall()
    return {name for (name,) in rows}


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the bookkeeping tables a warehouse lacks (once per connection: a step asks often)."""
    if con in _ENSURED:
        return
    con.execute("CREATE SCHEMA IF NOT EXISTS profiles")
    con.execute(f"CREATE TABLE IF NOT EXISTS {GENERATIONS} (generation BIGINT, mode VARCHAR, run_id VARCHAR, "
                "created_at TIMESTAMP, customers_changed BIGINT, customers BIGINT)")
    con.execute(f"CREATE TABLE IF NOT EXISTS {CHANGED} (generation BIGINT, customer_id VARCHAR)")
    con.execute(f"CREATE TABLE IF NOT EXISTS {CONSUMED} (run_id VARCHAR, generation BIGINT)")
    con.execute(f"CREATE TABLE IF NOT EXISTS {STATE} (target VARCHAR, generation BIGINT, fingerprint VARCHAR, "
                "mode VARCHAR, refreshed_at TIMESTAMP, checks_passed BOOLEAN)")
    con.execute(f"ALTER TABLE {STATE} ADD COLUMN IF NOT EXISTS checks_passed BOOLEAN")  # older warehouses
    _ENSURED.add(con)


def current_generation(con: duckdb.DuckDBPyConnection) -> int | None:
    ensure_tables(con)
    return con.execute(f"SELECT max(generation) FROM {GENERATIONS}").fetchall()[0][0]


def record_generation(con: duckdb.DuckDBPyConnection, new: str, run_id: str, record_changes: str | None,
                      moved: str | None = None) -> dict:
    """Register `new` (the active xref this run writes) as the next generation.

    With `moved` (a query of the customer_ids, old and new, of records whose customer differs
    from the previous version's), the generation lists those customers and the customers of
    records whose content changed in runs not yet seen by any generation (`record_changes`:
    run_id, source, source_record_id). Without it, the generation is full: every table rebuilds."""
    ensure_tables(con)
    generation = (current_generation(con) or 0) + 1
    unseen = (f"SELECT * FROM {record_changes} WHERE run_id NOT IN (SELECT run_id FROM {CONSUMED})"
              if record_changes else None)
    customers = con.execute(f"SELECT count(DISTINCT customer_id) FROM {new}").fetchall()[0][0]
    if moved is None:
        con.execute(f"INSERT INTO {GENERATIONS} VALUES (?, 'full', ?, now()::TIMESTAMP, NULL, ?)",
                    [generation, run_id, customers])
        _consume(con, unseen, generation)
        return {"generation": generation, "mode": "full"}
    content = ""
    if unseen:
        content = f"""
            UNION
            SELECT n.customer_id FROM ({unseen}) AS rc
            JOIN {new} AS n USING (source, source_record_id)"""
    con.execute(
        f"""
        INSERT INTO {CHANGED}
        SELECT ?, customer_id FROM (
            {moved}
            {content}
        ) WHERE customer_id IS NOT NULL
        """,
        [generation],
    )
    changed = con.execute(f"SELECT count(*) FROM {CHANGED} WHERE generation = ?", [generation]).fetchall()[0][0]
    con.execute(f"INSERT INTO {GENERATIONS} VALUES (?, 'incremental', ?, now()::TIMESTAMP, ?, ?)",
                [generation, run_id, changed, customers])
    _consume(con, unseen, generation)
    return {"generation": generation, "mode": "incremental", "customers_changed": int(changed)}


def _consume(con: duckdb.DuckDBPyConnection, unseen: str | None, generation: int) -> None:
    """Record changes of these runs are reflected from this generation on."""
    if unseen:
        con.execute(f"INSERT INTO {CONSUMED} SELECT DISTINCT run_id, ? FROM ({unseen})", [generation])


def state_fingerprint(con: duckdb.DuckDBPyConnection, target: str) -> str | None:
    ensure_tables(con)
    rows = con.execute(f"SELECT fingerprint FROM {STATE} WHERE target = ?", [target]).fetchall()
    return rows[0][0] if rows else None


def upstream_fingerprints(con: duckdb.DuckDBPyConnection, tables: Iterable[str]) -> list[str]:
    """Fingerprints of the refreshed tables among `tables`: a dependent rebuilds whole when one
    of them was rebuilt from different SQL or configuration."""
    names = sorted(set(tables))
    ensure_tables(con)
    known = dict(con.execute(
        f"SELECT target, fingerprint FROM {STATE} WHERE target IN ({', '.join('?' for _ in names)})", names
    ).fetchall()) if names else {}
    return [f"{t}={known.get(t)}" for t in names]


def plan_refresh(con: duckdb.DuckDBPyConnection, target: str, print_: str, incremental: bool,
                 extra_scope_sql: Iterable[str] = ()) -> RefreshPlan:
    """Decide how `target` is refreshed; for a scoped refresh, write its customers to a work table.

    `extra_scope_sql`: queries returning `customer_id`s that changed in inputs other than the
    xref (they receive the `:since` timestamp of the table's last refresh as `$since`)."""
    generation = current_generation(con)

    def full(reason: str) -> RefreshPlan:
        return RefreshPlan(target, "full", reason, generation, print_)

    if generation is None:
        return full("no xref generation recorded")
    if not incremental:
        return full("full refresh")
    if not table_exists(con, target):
        return full("table does not exist yet")
    state = con.execute(f"SELECT generation, fingerprint, refreshed_at, checks_passed FROM {STATE} WHERE target = ?",
                        [target]).fetchall()
    if not state:
        return full("never refreshed incrementally before")
    built_generation, built_print, refreshed_at, checks_passed = state[0]
    trusted = bool(checks_passed)
    if built_print != print_:
        return full("its SQL, configuration, variables or an input table's build changed")
    passed_full = con.execute(
        f"SELECT count(*) FROM {GENERATIONS} WHERE generation > ? AND mode = 'full'", [built_generation]
    ).fetchall()[0][0]
    if passed_full:
        return full("a full xref generation since its last refresh")
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {WORK_SCHEMA}")
    scope_table = f'{WORK_SCHEMA}."scope__{target.replace(".", "__")}"'
    sources = [f"SELECT customer_id FROM {CHANGED} WHERE generation > {int(built_generation)}"]
    sources += [q.replace("$since", f"TIMESTAMP '{refreshed_at}'") for q in extra_scope_sql]
    con.execute(f"CREATE OR REPLACE TABLE {scope_table} AS SELECT DISTINCT customer_id FROM ("
                + " UNION ".join(sources) + ") WHERE customer_id IS NOT NULL")
    scope = con.execute(f"SELECT count(*) FROM {scope_table}").fetchall()[0][0]
    if scope == 0:
        return RefreshPlan(target, "unchanged", "no customer changed", generation, print_, scope_table, 0, trusted)
    customers = con.execute(f"SELECT customers FROM {GENERATIONS} WHERE generation = ?", [generation]).fetchall()[0][0]
    if scope > MAX_SCOPE_SHARE * max(customers, 1):
        return full(f"{scope} changed customers, over {MAX_SCOPE_SHARE:.0%} of {customers}")
    return RefreshPlan(target, "scoped", f"{scope} changed customers", generation, print_, scope_table, int(scope),
                       trusted)


def replace_scope_rows(con: duckdb.DuckDBPyConnection, plan: RefreshPlan, select_sql: str) -> None:
    """In one transaction, replace the rows of the plan's customers by `select_sql`'s rows."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DELETE FROM {plan.target} WHERE customer_id IN (SELECT customer_id FROM {plan.scope_table})")
        con.execute(f"INSERT INTO {plan.target} BY NAME {select_sql}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def mark_refreshed(con: duckdb.DuckDBPyConnection, plan: RefreshPlan, keep_scope: bool = False) -> None:
    """Remember the generation and fingerprint the table now reflects (its checks not yet known).
    `keep_scope` leaves the scope table for the checks; `drop_scope` removes it after them."""
    ensure_tables(con)
    con.execute(f"DELETE FROM {STATE} WHERE target = ?", [plan.target])
    con.execute(f"INSERT INTO {STATE} (target, generation, fingerprint, mode, refreshed_at) "
                "VALUES (?, ?, ?, ?, now()::TIMESTAMP)", [plan.target, plan.generation, plan.fingerprint, plan.mode])
    if not keep_scope:
        drop_scope(con, plan)


def drop_scope(con: duckdb.DuckDBPyConnection, plan: RefreshPlan) -> None:
    if plan.scope_table:
        con.execute(f"DROP TABLE IF EXISTS {plan.scope_table}")


def record_checks(con: duckdb.DuckDBPyConnection, target: str, passed: bool) -> None:
    """Whether the table's blocking checks passed on its current rows: a later scoped refresh
    checks only its refreshed customers when they did, every row when they did not."""
    con.execute(f"UPDATE {STATE} SET checks_passed = ? WHERE target = ?", [passed, target])


_NARROWED = "(SELECT t.* FROM {table} AS t JOIN {scope} AS s USING (customer_id))"
"""A table's rows of the scope's customers. A join rather than `customer_id IN (...)`: the
scope holds each customer once, so the rows are the same, and DuckDB then orders the joins by
the scope's real size (IN became a semi join applied last, after joining whole tables: the
scoped web events joined all 430,000 xref rows of the web source first, 0.107 s against 0.059 s)."""


def scoped_sql(select_sql: str, customer_tables: set[str], scope_table: str) -> str:
    """`select_sql` with every read of a table in `customer_tables` narrowed to the scope's
    customers (a filtered subquery under the same alias), so its result holds their rows only."""
    tree = sqlglot.parse_one(select_sql, read="duckdb")
    wanted = {t.lower() for t in customer_tables}
    for table in list(tree.find_all(exp.Table)):
        qualified = f"{table.db}.{table.name}".lower()
        if not table.db or qualified not in wanted:
            continue
        alias = table.alias or table.name
        narrowed = sqlglot.parse_one(_NARROWED.format(table=f"{table.db}.{table.name}", scope=scope_table), read="duckdb")
        table.replace(exp.Subquery(this=narrowed.this if isinstance(narrowed, exp.Subquery) else narrowed,
                                   alias=exp.TableAlias(this=exp.to_identifier(alias))))
    return tree.sql(dialect="duckdb")


def narrowed(table: str, plan: RefreshPlan) -> str:
    """`table` restricted to the plan's customers, as a parenthesized subquery."""
    return f"(SELECT * FROM {table} WHERE customer_id IN (SELECT customer_id FROM {plan.scope_table}))"


@contextmanager
def narrowed_table(con: duckdb.DuckDBPyConnection, table: str, plan: RefreshPlan) -> Iterator[str]:
    """`table` restricted to the plan's customers, written once to a temporary table (queries
    that read it several times then scan a few thousand rows, not the whole table each time)."""
    name = f"_narrowed_{table.replace('.', '_')}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {narrowed(table, plan)}")
    try:
        yield name
    finally:
        con.execute(f"DROP TABLE IF EXISTS {name}")


def refresh_from_xref(con: duckdb.DuckDBPyConnection, target: str, select_for, xref: str, print_: str,
                      incremental: bool) -> RefreshPlan:
    """Refresh `target`, whose rows `select_for(xref)` computes for the customers of `xref`."""
    plan = plan_refresh(con, target, print_, incremental)
    if plan.mode == "full":
        schema = target.split(".")[0]
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        con.execute(f"CREATE OR REPLACE TABLE {target} AS {select_for(xref)}")
    elif plan.mode == "scoped":
        with narrowed_table(con, xref, plan) as scoped_xref:
            replace_scope_rows(con, plan, select_for(scoped_xref))
    mark_refreshed(con, plan)
    return plan
