"""Run SQL models on DuckDB (the warehouse) or PostgreSQL (same SQL, transpiled by sqlglot).

Variables from config/context.yaml are rendered as SQL literals after checking their type:
numbers, intervals ("48 hours") and timestamps only, so configuration can never inject SQL.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlglot
from psycopg import sql as pgsql

from cdp_pipelines.config_files import StrictModel, read_yaml_mapping, validate_mapping
from cdp_pipelines.context.sql_models import VAR_PATTERN, SqlModel
from cdp_pipelines.operations import scoped_refresh
from cdp_pipelines.segments.build import CHANGES_TABLE, MEMBERSHIP_TABLE

# Tables models may read that other stages write, with the columns they always have. A model
# reading one must still run when that stage wrote nothing (no segments declared, a warehouse
# where the stage never ran): the table is then created empty first.
TABLES_FROM_OTHER_STAGES: dict[tuple[str, str], str] = {
    tuple(MEMBERSHIP_TABLE.split(".")): "segment VARCHAR, customer_id VARCHAR, added_at TIMESTAMP",
}

_INTERVAL = re.compile(r"^\s*(\d+)\s*(second|minute|hour|day|week|month|year)s?\s*$", re.IGNORECASE)


class VariableError(ValueError):
    """A model uses a variable that is missing or of a type that cannot be rendered safely."""


class ContextKeys(StrictModel):
    """The top level of config/context.yaml; the names under `vars` are the models' own."""

    version: int = 1
    vars: dict[str, Any] | None = None


def load_variables(config_path: Path) -> dict[str, Any]:
    """The `vars` mapping of config/context.yaml."""
    raw = read_yaml_mapping(config_path, VariableError)
    if not isinstance(raw.get("vars"), (dict, type(None))):
        raise VariableError(f"{config_path}: 'vars' must be a mapping")
    return validate_mapping(config_path, raw, ContextKeys, VariableError).vars or {}


def render_literal(name: str, value: Any) -> str:
    """One variable as a SQL literal: a number, an INTERVAL, a TIMESTAMP or NULL."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        raise VariableError(f"variable '{name}': booleans are not allowed (use 0/1)")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise VariableError(f"variable '{name}' must be finite")
        return repr(value)
    if isinstance(value, dt.datetime):
        return f"CAST('{value.replace(tzinfo=None).isoformat(sep=' ', timespec='seconds')}' AS TIMESTAMP)"
    if isinstance(value, dt.date):
        return f"CAST('{value.isoformat()} 00:00:00' AS TIMESTAMP)"
    if isinstance(value, str):
        interval = _INTERVAL.match(value)
        if interval:
            return f"INTERVAL '{int(interval.group(1))} {interval.group(2).lower()}s'"
        try:
            return render_literal(name, dt.datetime.fromisoformat(value.strip()))
        except ValueError:
            pass
    raise VariableError(
        f"variable '{name}' = {value!r}: only numbers, intervals like '48 hours' and ISO timestamps are allowed"
    )


def render(model_sql: str, variables: Mapping[str, Any]) -> str:
    """The model's SQL with every {{ var('name') }} replaced by its checked literal."""
    def substitute(match: re.Match) -> str:
        name = match.group(1)
        if name not in variables:
            raise VariableError(f"variable '{name}' is not defined in the vars of context.yaml "
                                "(in the configuration folder, CDP_CONFIG_DIR)")
        return render_literal(name, variables[name])

    return VAR_PATTERN.sub(substitute, model_sql)


def to_postgres(duckdb_sql: str) -> str:
    """The DuckDB-dialect SELECT rewritten for PostgreSQL."""
    statements = sqlglot.parse(duckdb_sql, read="duckdb")
    if len(statements) != 1 or statements[0] is None:
        raise ValueError(f"a model must be exactly one SELECT, found {len(statements)} statements")
    return statements[0].transform(sorted_list_as_ordered_aggregate).sql(dialect="postgres")


def sorted_list_as_ordered_aggregate(node: sqlglot.exp.Expression) -> sqlglot.exp.Expression:
    """list_sort(list(x) [FILTER (...)]) -> array_agg(x ORDER BY x) [FILTER (...)].

    On DuckDB, sorting the gathered list costs about half an ordered aggregate; PostgreSQL has
    no array sort function, and the ordered aggregate (same direction, same place for nulls)
    gives the same list there. A sort of anything else keeps its form, which PostgreSQL
    refuses (the models' test there catches it)."""
    if not isinstance(node, sqlglot.exp.ArraySort):
        return node
    inner = node.this
    aggregate = inner.this if isinstance(inner, sqlglot.exp.Filter) else inner
    if not isinstance(aggregate, sqlglot.exp.ArrayAgg) or isinstance(aggregate.this, sqlglot.exp.Order):
        return node
    value = aggregate.this
    distinct = value if isinstance(value, sqlglot.exp.Distinct) else None
    if distinct is not None:
        if len(distinct.expressions) != 1:
            return node
        value = distinct.expressions[0]
    ascending, nulls_first = node.args.get("asc"), node.args.get("nulls_first")
    order_key = sqlglot.exp.Ordered(this=value.copy(), desc=ascending is not None and not ascending.this,
                                    nulls_first=bool(nulls_first and nulls_first.this))
    ordered = sqlglot.exp.Order(this=(distinct or value).copy(), expressions=[order_key])
    rewritten = inner.copy()
    (rewritten.this if isinstance(rewritten, sqlglot.exp.Filter) else rewritten).set("this", ordered)
    return rewritten


def _select_only(rendered: str) -> str:
    return rendered.strip().rstrip(";").strip()


def ensure_inputs_exist(execute, model: SqlModel) -> None:
    """Create, empty, the tables of other stages the model reads and which do not exist yet."""
    for schema, table in model.deps:
        columns = TABLES_FROM_OTHER_STAGES.get((schema, table))
        if columns:
            execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            execute(f'CREATE TABLE IF NOT EXISTS "{schema}"."{table}" ({columns})')


def run_on_duckdb(con, model: SqlModel, variables: Mapping[str, Any]) -> None:
    """CREATE OR REPLACE the model's table in the DuckDB warehouse."""
    select = _select_only(render(model.sql, variables))
    ensure_inputs_exist(con.execute, model)
    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{model.layer}"')
    con.execute(f'CREATE OR REPLACE TABLE "{model.layer}"."{model.name}" AS\n{select}')


def effective_variables(con, model: SqlModel, variables: Mapping[str, Any]) -> dict[str, Any]:
    """The variables with an unset `as_of` replaced by the value of the model's `as_of` CTE over
    all customers, so a refresh of some customers uses the same moment as a whole rebuild."""
    resolved = dict(variables)
    if "as_of" not in model.variables or resolved.get("as_of") is not None:
        return resolved
    tree = sqlglot.parse_one(_select_only(render(model.sql, resolved)), read="duckdb")
    cte = next((c for c in tree.find_all(sqlglot.exp.CTE) if c.alias_or_name.lower() == "as_of"), None)
    if cte is None:
        return resolved
    ensure_inputs_exist(con.execute, model)
    value = con.execute(f"SELECT * FROM ({cte.this.sql(dialect='duckdb')})").fetchall()
    if value and value[0][0] is not None:
        resolved["as_of"] = value[0][0]
    return resolved


def refresh_on_duckdb(con, model: SqlModel, variables: Mapping[str, Any],
                      incremental: bool) -> scoped_refresh.RefreshPlan:
    """Build the model's table whole, or (incremental, per-customer model) only the rows of the
    customers changed since it was built: every input table with a customer_id is read for
    those customers only (see operations/scoped_refresh.py)."""
    resolved = effective_variables(con, model, variables)
    select = _select_only(render(model.sql, resolved))
    ensure_inputs_exist(con.execute, model)
    inputs = [f"{schema}.{table}" for schema, table in model.deps]
    print_ = scoped_refresh.fingerprint(select, *scoped_refresh.upstream_fingerprints(con, inputs))
    keyed = scoped_refresh.customer_keyed(con, [model.table, *inputs])
    per_customer = model.table.lower() in keyed
    extra = [f"SELECT customer_id FROM {CHANGES_TABLE} WHERE changed_at > $since"] if MEMBERSHIP_TABLE in inputs else []
    plan = scoped_refresh.plan_refresh(con, model.table, print_, incremental and per_customer, extra)
    if plan.mode == "full":
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{model.layer}"')
        con.execute(f'CREATE OR REPLACE TABLE "{model.layer}"."{model.name}" AS\n{select}')
    elif plan.mode == "scoped":
        customer_tables = {t for t in inputs if t.lower() in keyed}
        scoped_refresh.replace_scope_rows(con, plan, scoped_refresh.scoped_sql(select, customer_tables, plan.scope_table))
    scoped_refresh.mark_refreshed(con, plan, keep_scope=True)  # the caller's checks may read it, then drop it
    return plan


def run_on_postgres(conn, model: SqlModel, variables: Mapping[str, Any]) -> None:
    """Drop and recreate the model's table in one transaction on a psycopg 3 connection."""
    select = to_postgres(_select_only(render(model.sql, variables)))
    table = pgsql.Identifier(model.layer, model.name)
    with conn.transaction():
        ensure_inputs_exist(conn.execute, model)
        conn.execute(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(model.layer)))
        conn.execute(pgsql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(table))
        conn.execute(pgsql.SQL("CREATE TABLE {} AS ").format(table) + pgsql.SQL(select))


def run_models(target, models: list[SqlModel], variables: Mapping[str, Any], *, engine: str = "duckdb") -> None:
    """Run models in the given (dependency) order on DuckDB or PostgreSQL."""
    runner = {"duckdb": run_on_duckdb, "postgres": run_on_postgres}[engine]
    for model in models:
        runner(target, model, variables)
