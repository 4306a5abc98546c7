"""Check a segment rule before it ever reaches the warehouse.

A rule is one SQL boolean expression over `marts.customer_profile` under the alias `customer_360`
(the customer columns marketers know from customer_360), which may use subqueries (EXISTS, IN,
scalar) over an allow-list of tables. It is parsed with sqlglot as an
expression, never as a statement, and the SQL that runs is regenerated from the checked tree, so
what runs is exactly what was checked. Functions are allow-listed: anything that reads files,
touches settings or sequences, or runs SQL from a string is refused.

Rules never read `marts.customer_360` itself: that table lists each customer's current segments,
so it is built after them. `marts.customer_profile` is the same table without that column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError, ParseError, TokenError
from sqlglot.optimizer.qualify import qualify
from sqlglot.tokens import TokenType

from cdp_pipelines.segments.config import SegmentConfigError

DIALECT = "duckdb"
BASE_TABLE = "marts.customer_profile"
BASE_ALIAS = "customer_360"
# Built from the segments (it lists them), so a rule reading it would make a cycle.
SEGMENTED_TABLE = "marts.customer_360"
CONSENT_TABLE = "profiles.consent"
ALLOWED_TABLES: frozenset[str] = frozenset({
    BASE_TABLE,
    "marts.contact_context",
    "marts.journeys",
    "marts.customer_sentiment",
    "marts.escalations",
    "marts.interaction_timeline",
    CONSENT_TABLE,
})

# Table functions usable in FROM: only ones that expand a value already in hand.
ALLOWED_TABLE_FUNCTIONS: frozenset[str] = frozenset({"EXPLODE", "UNNEST"})

# Scalar and aggregate functions, by sqlglot's name for them (or the upper-cased name sqlglot
# does not know). Everything else, e.g. READ_CSV, READ_TEXT, GLOB, QUERY, GETENV,
# CURRENT_SETTING, NEXTVAL, SETSEED, GETVARIABLE, is refused.
ALLOWED_FUNCTIONS: frozenset[str] = frozenset({
    # logic and conditionals
    "EXISTS", "CASE", "IF", "COALESCE", "NULLIF", "GREATEST", "LEAST", "CAST", "TRY_CAST",
    # text
    "LOWER", "UPPER", "TRIM", "LENGTH", "CONCAT", "REPLACE", "SUBSTRING", "LEFT", "RIGHT",
    "SPLIT_PART", "SPLIT", "CONTAINS", "STARTS_WITH", "ENDS_WITH", "REGEXP_LIKE", "REGEXP_REPLACE",
    "STRLEN", "PREFIX", "SUFFIX",
    # numbers
    "ABS", "ROUND", "FLOOR", "CEIL", "SQRT", "POWER", "LN",
    # dates and times
    "CURRENT_DATE", "CURRENT_TIMESTAMP", "NOW", "TODAY", "DATEDIFF", "DATE_DIFF", "DATE_ADD", "DATE_SUB",
    "TIMESTAMP_TRUNC", "DATE_TRUNC", "DATE_PART", "DATEPART", "EXTRACT", "YEAR", "MONTH", "DAY",
    "DAY_OF_WEEK", "AGE", "LAST_DAY", "DATE_FROM_PARTS", "STR_TO_TIME", "TIME_TO_STR", "TO_DAYS",
    # lists
    "ARRAY", "ARRAY_CONTAINS", "ARRAY_SIZE", "ARRAY_OVERLAPS", "ARRAY_SORT",
    # aggregates (inside subqueries)
    "COUNT", "COUNT_IF", "SUM", "AVG", "MIN", "MAX", "MEDIAN", "ANY_VALUE", "LOGICAL_OR",
    "LOGICAL_AND", "ARRAY_AGG",
})

# Node types that only occur in statements; refused wherever they appear.
_STATEMENT_TYPES = tuple(
    getattr(exp, name) for name in (
        "DDL", "DML", "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "Command",
        "Copy", "Pragma", "Set", "Use", "Attach", "Detach", "Describe", "Transaction", "Commit",
        "Rollback", "Into", "Install", "Load", "Cache", "Uncache", "Refresh", "Export",
    ) if hasattr(exp, name)
)


@dataclass(frozen=True)
class ValidatedRule:
    """A rule that passed every check, with the SQL regenerated from its syntax tree."""

    segment: str
    sql: str
    tables: tuple[str, ...]


def _error(segment: str, problem: str) -> SegmentConfigError:
    return SegmentConfigError(f"segment {segment!r}: {problem}")


def _table_name(table: exp.Table) -> str:
    return ".".join(part.lower() for part in (table.catalog, table.db, table.name) if part)


def _function_name(node: exp.Func) -> str:
    return node.name.upper() if isinstance(node, exp.Anonymous) else node.sql_name().upper()


def _parse(segment: str, rule: str) -> exp.Expression:
    try:
        tokens = sqlglot.tokenize(rule, read=DIALECT)
    except (TokenError, ParseError) as error:
        raise _error(segment, f"rule is not readable SQL: {error}") from None
    if any(token.token_type == TokenType.SEMICOLON for token in tokens):
        raise _error(segment, "rule contains ';': a rule is one boolean expression, not statements")
    if tokens and tokens[0].token_type in {TokenType.SELECT, TokenType.WITH} or (
        tokens and tokens[0].text.upper() in {"DROP", "DELETE", "INSERT", "UPDATE", "CREATE", "ALTER",
                                               "COPY", "ATTACH", "PRAGMA", "SET", "INSTALL", "LOAD", "CALL"}
    ):
        raise _error(segment, f"rule starts with {tokens[0].text.upper()}: write a boolean expression "
                              "such as `lifetime_value > 500`, not a statement")
    try:
        return sqlglot.parse_one(rule, read=DIALECT, into=exp.Condition)
    except (ParseError, TokenError):
        raise _error(segment, "rule is not a single SQL boolean expression (check brackets, quotes "
                              "and operators)") from None


def _check_nodes(segment: str, condition: exp.Expression) -> tuple[str, ...]:
    """Refuse statements, foreign tables and unlisted functions; return the tables used."""
    tables: set[str] = set()
    for node in condition.walk():
        if isinstance(node, _STATEMENT_TYPES):
            raise _error(segment, f"rule contains a {node.key.upper()} statement; only expressions are allowed")
        if isinstance(node, exp.With):
            raise _error(segment, "rule uses WITH; write the subquery inline (EXISTS / IN)")
        if isinstance(node, (exp.Placeholder, exp.Parameter)):
            raise _error(segment, f"rule contains a parameter ({node.sql(DIALECT)}); write the value itself")
        if isinstance(node, exp.Table):
            if not isinstance(node.this, exp.Identifier):
                name = _function_name(node.this) if isinstance(node.this, exp.Func) else node.this.sql(DIALECT)
                if name not in ALLOWED_TABLE_FUNCTIONS:
                    raise _error(segment, f"rule reads from {name}(...); only the tables "
                                          f"{sorted(ALLOWED_TABLES)} may be read")
                continue
            name = _table_name(node)
            if name == SEGMENTED_TABLE:
                raise _error(segment, f"rule reads {SEGMENTED_TABLE}, which is built from the segments; "
                                      f"read {BASE_TABLE} (the same customer columns) instead")
            if name not in ALLOWED_TABLES:
                raise _error(segment, f"rule reads table {name!r}, which is not allowed; "
                                      f"allowed tables: {', '.join(sorted(ALLOWED_TABLES))}")
            tables.add(name)
        elif isinstance(node, exp.Func) and not isinstance(node, exp.Connector):
            name = _function_name(node)
            in_from = isinstance(node.parent, (exp.From, exp.Join, exp.Lateral))
            allowed = ALLOWED_TABLE_FUNCTIONS if in_from else ALLOWED_FUNCTIONS | ALLOWED_TABLE_FUNCTIONS
            if name not in allowed:
                raise _error(segment, f"rule calls {name.lower()}(), which is not an allowed function "
                                      "(functions that read files, settings or run SQL are refused)")
    return tuple(sorted(tables))


def _check_columns(segment: str, condition: exp.Expression, schema: dict[str, dict[str, str]]) -> None:
    """Refuse columns no referenced table has (only for tables whose columns are known)."""
    nested: dict[str, dict[str, dict[str, str]]] = {}
    for table, columns in schema.items():
        db, name = table.split(".", 1)
        nested.setdefault(db, {})[name] = columns
    query = select_matches(condition.copy())
    try:
        qualify(query, schema=nested, dialect=DIALECT, validate_qualify_columns=True,
                quote_identifiers=False, identify=False)
    except OptimizeError as error:
        text = str(error)
        found = re.search(r"Column '([^']+)' could not be resolved|Unknown column: (\S+)", text)
        column = next((g for g in found.groups() if g), None) if found else None
        if column:
            raise _error(segment, f"rule uses unknown column {column!r} (no table the rule reads has it; "
                                  f"unqualified columns outside subqueries are those of {BASE_TABLE})") from None
        raise _error(segment, f"rule cannot be resolved: {text.splitlines()[0]}") from None


def select_matches(condition: exp.Expression) -> exp.Select:
    """The customers a checked condition selects (before consent)."""
    base = sqlglot.parse_one(f"SELECT {BASE_ALIAS}.customer_id FROM {BASE_TABLE} AS {BASE_ALIAS}", read=DIALECT)
    return base.where(exp.paren(condition))


def validate_rule(segment: str, rule: str, schema: dict[str, dict[str, str]] | None = None) -> ValidatedRule:
    """Parse and check a rule; `schema` maps 'schema.table' to its columns where they are known."""
    condition = _parse(segment, rule)
    tables = _check_nodes(segment, condition)
    if schema:
        _check_columns(segment, condition, {t: c for t, c in schema.items() if t in ALLOWED_TABLES})
    # Comments are dropped: a `--` comment would otherwise come back as a /* */ block.
    return ValidatedRule(segment=segment, sql=exp.paren(condition).sql(DIALECT, comments=False),
                         tables=tuple(sorted({BASE_TABLE, *tables})))


def warehouse_schema(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    """Columns of the allowed tables that exist in the warehouse."""
    rows = con.execute(
        """
        SELECT table_schema || '.' || table_name, column_name, data_type
        FROM information_schema.columns
        WHERE table_catalog = current_database()
        ORDER BY table_schema, table_name, ordinal_position
        """
    ).fetchall()
    schema: dict[str, dict[str, str]] = {}
    for table, column, data_type in rows:
        if table.lower() in ALLOWED_TABLES:
            schema.setdefault(table.lower(), {})[column.lower()] = data_type
    return schema


def check_rule_binds(con: duckdb.DuckDBPyConnection, validated: ValidatedRule) -> None:
    """Bind the rule against the warehouse without reading data: missing tables and columns and
    mismatched types of columns are reported for the segment instead of failing later."""
    missing = [t for t in validated.tables if t not in warehouse_schema(con)]
    if missing:
        raise _error(validated.segment, f"rule needs table(s) {missing}, which the warehouse does not "
                                        "have yet; materialize the marts and profiles first")
    try:
        con.execute(f"{matches_sql(validated)} LIMIT 0").fetchall()
    except duckdb.Error as error:
        raise rule_failed(validated, error) from None


def check_rule_runs(con: duckdb.DuckDBPyConnection, validated: ValidatedRule) -> None:
    """Bind the rule, then evaluate it over the warehouse's rows as a build would.

    Binding alone misses values DuckDB converts only when it evaluates them: `lifetime_value >=
    'abc'` binds and plans (LIMIT 0 and EXPLAIN pass) and fails with a conversion error on the
    first row. Counting the matches evaluates the rule on every row, so what passes here runs."""
    check_rule_binds(con, validated)
    try:
        con.execute(f"SELECT count(*) FROM ({matches_sql(validated)})").fetchall()
    except duckdb.Error as error:
        raise rule_failed(validated, error) from None


def matches_sql(validated: ValidatedRule) -> str:
    """The customers a validated rule selects (before consent), once each: what a build keeps
    and what validation evaluates."""
    return (f"SELECT DISTINCT CAST({BASE_ALIAS}.customer_id AS VARCHAR) AS customer_id "
            f"FROM {BASE_TABLE} AS {BASE_ALIAS} WHERE {validated.sql}")


def rule_failed(validated: ValidatedRule, error: duckdb.Error) -> SegmentConfigError:
    """The warehouse's objection to a rule, as one line naming the segment."""
    first_line = str(error).splitlines()[0]
    return _error(validated.segment, f"rule does not run on the warehouse: {first_line}")
