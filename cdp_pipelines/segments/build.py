"""Segment membership: who matches a rule, intersected with consent, written to one table.

Consent is enforced by construction. The user's rule only ever selects the `matched` customers;
membership always joins them with the customers holding an opt-in for every consent the channel
needs (from `profiles.consent`, the resolved source of truth). No rule can widen that join.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from cdp_pipelines.segments.config import SegmentConfigError, SegmentDefinition, SegmentsConfig
from cdp_pipelines.segments.validation import (
    CONSENT_TABLE,
    ValidatedRule,
    check_rule_binds,
    check_rule_runs,
    matches_sql,
    rule_failed,
    validate_rule,
    warehouse_schema,
)

MEMBERSHIP_TABLE = "segments.membership"
CHANGES_TABLE = "segments.membership_changes"
BUILDS_TABLE = "segments.builds"


@dataclass(frozen=True)
class BuildResult:
    segment: str
    matched: int
    """Customers the rule selects, before consent."""
    members: int
    """Customers in the segment: matched and consented for the channel."""
    added: int
    removed: int
    consent_channels: tuple[str, ...]

    @property
    def excluded_by_consent(self) -> int:
        return self.matched - self.members


def consented_sql(consent_channels: tuple[str, ...], among: str | None = None) -> str:
    """Customers whose every consent record for each needed channel says opt_in.

    `among`, a query of `customer_id`s, limits the answer (and the aggregation behind it) to those
    customers: a segment's candidates or members are a few thousand of the warehouse's customers,
    and aggregating every customer's consent for each of them took most of a segment's build."""
    if not consent_channels:
        raise ValueError("a channel needs at least one consent")
    listed = ", ".join(f"'{c}'" for c in consent_channels)
    limited = f"\n          AND CAST(customer_id AS VARCHAR) IN (SELECT customer_id FROM ({among}))" if among else ""
    return f"""
        SELECT CAST(customer_id AS VARCHAR) AS customer_id
        FROM {CONSENT_TABLE}
        WHERE channel IN ({listed}){limited}
        GROUP BY customer_id
        HAVING count(DISTINCT channel) = {len(consent_channels)} AND bool_and(status = 'opt_in')
    """


def membership_sql(matched: str, consent_channels: tuple[str, ...]) -> str:
    """Members: the customers of `matched` (a table of the rule's customers, `matches_sql`)
    that hold every needed opt-in."""
    consented = consented_sql(consent_channels, among=f"SELECT customer_id FROM {matched}")
    return f"SELECT m.customer_id FROM {matched} m JOIN ({consented}) c USING (customer_id)"


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS segments")
    con.execute(f"CREATE TABLE IF NOT EXISTS {MEMBERSHIP_TABLE} "
                "(segment VARCHAR, customer_id VARCHAR, added_at TIMESTAMP)")
    con.execute(f"CREATE TABLE IF NOT EXISTS {CHANGES_TABLE} "
                "(segment VARCHAR, customer_id VARCHAR, change VARCHAR, changed_at TIMESTAMP, run_id VARCHAR)")
    con.execute(f"CREATE TABLE IF NOT EXISTS {BUILDS_TABLE} (segment VARCHAR, built_at TIMESTAMP, run_id VARCHAR, "
                "channel VARCHAR, rule VARCHAR, matched BIGINT, members BIGINT, added BIGINT, removed BIGINT)")


def validate_segment(con: duckdb.DuckDBPyConnection, segment: SegmentDefinition) -> ValidatedRule:
    """Check the rule against the warehouse's actual columns and evaluate it over its rows, so a
    rule that passes here also runs in `cdp run`."""
    validated = validate_rule(segment.name, segment.rule, warehouse_schema(con))
    check_rule_runs(con, validated)
    return validated


def _bound_rule(con: duckdb.DuckDBPyConnection, segment: SegmentDefinition) -> ValidatedRule:
    """The checks of validate_segment short of evaluating the rule, which the build does anyway."""
    validated = validate_rule(segment.name, segment.rule, warehouse_schema(con))
    check_rule_binds(con, validated)
    return validated


def build_segment(con: duckdb.DuckDBPyConnection, segment: SegmentDefinition, config: SegmentsConfig,
                  run_id: str = "") -> BuildResult:
    """Replace the segment's rows in segments.membership, keeping `added_at` for customers who
    stay, and log who joined and who left."""
    validated = _bound_rule(con, segment)
    consent_channels = config.consent_channels(segment.channel)
    ensure_tables(con)
    name = segment.name
    con.execute("BEGIN TRANSACTION")
    try:
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE _segment_matched AS {matches_sql(validated)}")
        except duckdb.Error as error:
            raise rule_failed(validated, error) from None
        matched = con.execute("SELECT count(*) FROM _segment_matched").fetchone()[0]
        con.execute(f"CREATE OR REPLACE TEMP TABLE _segment_new AS {membership_sql('_segment_matched', consent_channels)}")
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _segment_diff AS
                SELECT coalesce(n.customer_id, o.customer_id) AS customer_id,
                       CASE WHEN o.customer_id IS NULL THEN 'added'
                            WHEN n.customer_id IS NULL THEN 'removed' ELSE 'kept' END AS change,
                       o.added_at
                FROM _segment_new n
                FULL OUTER JOIN (SELECT * FROM {MEMBERSHIP_TABLE} WHERE segment = ?) o USING (customer_id)""",
            [name],
        )
        con.execute(f"DELETE FROM {MEMBERSHIP_TABLE} WHERE segment = ?", [name])
        con.execute(
            f"""INSERT INTO {MEMBERSHIP_TABLE}
                SELECT ?, customer_id, coalesce(added_at, now()::TIMESTAMP) FROM _segment_diff
                WHERE change <> 'removed'""",
            [name],
        )
        con.execute(
            f"""INSERT INTO {CHANGES_TABLE}
                SELECT ?, customer_id, change, now()::TIMESTAMP, ? FROM _segment_diff WHERE change <> 'kept'""",
            [name, run_id],
        )
        members, added, removed = con.execute(
            "SELECT count(*) FILTER (change <> 'removed'), count(*) FILTER (change = 'added'), "
            "count(*) FILTER (change = 'removed') FROM _segment_diff"
        ).fetchone()
        con.execute(f"INSERT INTO {BUILDS_TABLE} VALUES (?, now()::TIMESTAMP, ?, ?, ?, ?, ?, ?, ?)",
                    [name, run_id, segment.channel, validated.sql, matched, members, added, removed])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("DROP TABLE IF EXISTS _segment_matched")
        con.execute("DROP TABLE IF EXISTS _segment_new")
        con.execute("DROP TABLE IF EXISTS _segment_diff")
    return BuildResult(segment=name, matched=int(matched), members=int(members), added=int(added),
                       removed=int(removed), consent_channels=consent_channels)


def prune_undeclared(con: duckdb.DuckDBPyConnection, declared: list[str], run_id: str = "") -> int:
    """Remove the members of segments no longer declared, logging them as removed.

    Membership rows are only replaced for the segments a run builds, so without this a segment
    deleted from the configuration would keep its last members, and marts.customer_360 would go
    on listing it as a current segment. Returns the rows removed.
    """
    ensure_tables(con)
    names = list(declared) or [""]
    placeholders = ", ".join("?" for _ in names)
    stale = f"FROM {MEMBERSHIP_TABLE} WHERE segment NOT IN ({placeholders})"
    removed = int(con.execute(f"SELECT count(*) {stale}", names).fetchone()[0])
    if removed:
        con.execute(f"INSERT INTO {CHANGES_TABLE} SELECT segment, customer_id, 'removed', now()::TIMESTAMP, ? {stale}",
                    [run_id, *names])
        con.execute(f"DELETE {stale}", names)
    return removed


def members_without_consent(con: duckdb.DuckDBPyConnection, segment: str, consent_channels: tuple[str, ...]) -> int:
    """Members of a segment lacking a needed opt-in right now (should always be 0)."""
    members = f"SELECT customer_id FROM {MEMBERSHIP_TABLE} WHERE segment = $segment"
    return int(con.execute(
        f"""SELECT count(*) FROM ({members}) m
            WHERE NOT EXISTS (SELECT 1 FROM ({consented_sql(consent_channels, among=members)}) c
                              WHERE c.customer_id = m.customer_id)""",
        {"segment": segment},
    ).fetchone()[0])


def _has_table(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, table = qualified.split(".", 1)
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", [schema, table]
    ).fetchone()[0])


def built_segments(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Segments built at least once in this warehouse."""
    if not _has_table(con, BUILDS_TABLE):
        return set()
    return {row[0] for row in con.execute(f"SELECT DISTINCT segment FROM {BUILDS_TABLE}").fetchall()}


def member_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Members per built segment (a built segment with no members counts 0)."""
    if not _has_table(con, MEMBERSHIP_TABLE):
        return {}
    counts = {s: int(n) for s, n in con.execute(f"SELECT segment, count(*) FROM {MEMBERSHIP_TABLE} GROUP BY ALL").fetchall()}
    return {name: counts.get(name, 0) for name in built_segments(con) | set(counts)}


@dataclass(frozen=True)
class LatestBuild:
    """What a segment's latest build recorded in segments.builds: when, and the definition used."""

    built_at: datetime
    channel: str
    rule: str
    """The rule as validated, i.e. as `validate_rule(...).sql` regenerates it."""


def latest_builds(con: duckdb.DuckDBPyConnection) -> dict[str, LatestBuild]:
    """Each built segment's latest build."""
    if not _has_table(con, BUILDS_TABLE):
        return {}
    rows = con.execute(f"SELECT segment, max(built_at), arg_max(channel, built_at), "
                       f"arg_max(rule, built_at) FROM {BUILDS_TABLE} GROUP BY segment").fetchall()
    return {name: LatestBuild(built_at, channel, rule) for name, built_at, channel, rule in rows}


def changed_since_build(segment: SegmentDefinition, built: LatestBuild) -> list[str]:
    """The parts of the declared definition that decide membership and differ from the build's:
    the rule (compared as validated, so layout and comments do not count) and the channel, whose
    consent the build required."""
    changed = []
    if validate_rule(segment.name, segment.rule).sql != built.rule:
        changed.append("rule")
    if segment.channel != built.channel:
        changed.append("channel")
    return changed


def stale_build_problem(segment: SegmentDefinition, built: LatestBuild) -> str | None:
    """Why the built members no longer stand for the declared segment, or None while they do."""
    changed = changed_since_build(segment, built)
    if not changed:
        return None
    return (f"the segment's {' and '.join(changed)} changed since it was built at "
            f"{built.built_at:%Y-%m-%d %H:%M:%S}; run `cdp run` to rebuild")


def segment_status(con: duckdb.DuckDBPyConnection, segment: SegmentDefinition,
                   built: LatestBuild | None) -> str:
    """'current', 'not built', 'stale: <why>' or 'invalid: <why>': whether the built members
    still stand for the declared segment. Binds the rule without evaluating it (cheap)."""
    try:
        _bound_rule(con, segment)
    except SegmentConfigError as error:
        return "invalid: " + str(error).removeprefix(f"segment {segment.name!r}: ")
    if built is None:
        return "not built"
    stale = stale_build_problem(segment, built)
    return f"stale: {stale}" if stale else "current"
