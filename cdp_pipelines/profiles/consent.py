"""Consent per customer and channel from explicit signals only (config/consent.yaml).

The most recent explicit choice wins; at the same instant an opt-out wins; an undated opt-in
is ignored and an undated opt-out counts as the latest choice. Anything not declared as a
signal (an e-receipt address, a purchase) never opts anyone in.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from pydantic import Field, field_validator, model_validator

from cdp_pipelines.config_files import StrictModel
from cdp_pipelines.profiles.config_files import (
    COLUMN_NAME, SOURCE_NAME, ProfilesConfigError, load_yaml_model, table_columns,
)
from cdp_pipelines.sql_text import literal, quote_identifier as quoted

CONSENT = "profiles.consent"
CONSENT_SIGNALS = "profiles.consent_signals"
OLDEST = "TIMESTAMP '0001-01-01 00:00:00'"


class ConsentValues(StrictModel):
    opt_in: list[str]
    opt_out: list[str]

    @field_validator("opt_in", "opt_out", mode="before")
    @classmethod
    def _quoted(cls, value: object) -> object:
        if isinstance(value, list) and any(not isinstance(v, str) for v in value):
            raise ValueError("write every value in quotes (\"yes\", \"no\", \"1\"): "
                             "unquoted, YAML reads yes/no as true/false and 1 as a number")
        return value

    @model_validator(mode="after")
    def _disjoint(self) -> "ConsentValues":
        self.opt_in = [v.strip().lower() for v in self.opt_in]
        self.opt_out = [v.strip().lower() for v in self.opt_out]
        both = sorted(set(self.opt_in) & set(self.opt_out))
        if both:
            raise ValueError(f"{both} listed both as opt_in and opt_out")
        return self


class ConsentSignal(StrictModel):
    """One original column that records an explicit choice on one channel."""

    source: str
    channel: str
    column: str
    decided_at_column: str | None = None
    when: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if not SOURCE_NAME.match(value):
            raise ValueError(f"{value!r} is not a source name")
        return value

    @model_validator(mode="after")
    def _columns(self) -> "ConsentSignal":
        for column in [self.column, self.decided_at_column or "x", *self.when]:
            if not COLUMN_NAME.match(column):
                raise ValueError(f"{column!r} is not a column name")
        return self

    def columns(self) -> list[str]:
        return [self.column, *([self.decided_at_column] if self.decided_at_column else []), *self.when]


class ConsentConfig(StrictModel):
    version: int = 1
    channels: list[str]
    values: ConsentValues
    timestamp_formats: list[str] = Field(default_factory=list)
    signals: list[ConsentSignal]

    @model_validator(mode="after")
    def _known_channels(self) -> "ConsentConfig":
        unknown = sorted({s.channel for s in self.signals} - set(self.channels))
        if unknown:
            raise ValueError(f"signals use channel(s) {unknown} not listed in `channels`")
        return self


def load_consent_config(path: Path) -> ConsentConfig:
    return load_yaml_model(path, ConsentConfig)


def _timestamp(expression: str, formats: list[str]) -> str:
    """ISO 8601 first, then the configured formats; NULL when nothing parses."""
    text = f"nullif(trim({expression}), '')"
    parsed = [f"try_cast({text} AS TIMESTAMP)"]
    if formats:
        parsed.append(f"try_strptime({text}, [{', '.join(literal(f) for f in formats)}])")
    return f"coalesce({', '.join(parsed)})"


def usable_signals(con: duckdb.DuckDBPyConnection, config: ConsentConfig,
                   fixed_columns: Collection[str] = ()) -> tuple[list[ConsentSignal], list[str]]:
    """Signals whose table and columns exist, and why the others were skipped.

    A source without a standardized table (not declared or not ingested here) is skipped. A
    source in `fixed_columns` (CSV, Parquet) has every column of its files, so a column its table
    lacks is a mistake in consent.yaml: refused, rather than turned into `unknown` for every
    customer. Other sources may lack one: a JSON lines table only has the keys some record
    carried, and no record carrying a choice resolves to unknown, the safe outcome. Skips are
    reported.
    """
    usable, skipped = [], []
    for position, signal in enumerate(config.signals):
        name = f"{signal.source}.{signal.column} ({signal.channel})"
        columns = table_columns(con, "standardized", signal.source)
        if columns is None:
            skipped.append(f"{name}: no table standardized.{signal.source}")
            continue
        missing = [c for c in signal.columns() if c not in columns]
        if missing and signal.source in fixed_columns:
            raise ProfilesConfigError(_missing_columns_message(position, signal, missing, columns))
        if missing:
            skipped.append(f"{name}: column(s) {missing} absent from standardized.{signal.source}")
            continue
        usable.append(signal)
    return usable, skipped


def _missing_columns_message(position: int, signal: ConsentSignal, missing: list[str], columns: set[str]) -> str:
    originals = sorted(c for c in columns if c.startswith("src_"))
    hints = []
    for column in missing:
        close = difflib.get_close_matches(column, originals, n=1)
        hints.append(f"{column!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (f"consent.yaml: signals.{position} ({signal.source}, {signal.channel}): column(s) {', '.join(hints)} "
            f"not in standardized.{signal.source}; its original columns: {', '.join(originals) or 'none'}")


def _signal_select(signal: ConsentSignal, config: ConsentConfig, xref: str) -> str:
    choice = f"lower(trim(s.{quoted(signal.column)}))"
    status = (
        f"CASE WHEN {choice} IN ({', '.join(literal(v) for v in config.values.opt_out)}) THEN 'opt_out' "
        f"WHEN {choice} IN ({', '.join(literal(v) for v in config.values.opt_in)}) THEN 'opt_in' END"
    )
    decided = "s.observed_at"
    if signal.decided_at_column:
        decided = f"coalesce({_timestamp('s.' + quoted(signal.decided_at_column), config.timestamp_formats)}, s.observed_at)"
    filters = "".join(
        f" AND lower(trim(s.{quoted(c)})) IN ({', '.join(literal(v.strip().lower()) for v in values)})"
        for c, values in signal.when.items()
    )
    return (
        f"SELECT x.customer_id, {literal(signal.channel)} AS channel, {status} AS status, "
        f"CAST({decided} AS TIMESTAMP) AS decided_at, s.source, s.source_record_id "
        f"FROM standardized.{quoted(signal.source)} AS s "
        f"JOIN {xref} AS x ON x.source = s.source AND x.source_record_id = s.source_record_id "
        f"WHERE TRUE{filters}"
    )


EMPTY_SIGNALS = ("SELECT CAST(NULL AS VARCHAR) AS customer_id, CAST(NULL AS VARCHAR) AS channel, "
                 "CAST(NULL AS VARCHAR) AS status, CAST(NULL AS TIMESTAMP) AS decided_at, "
                 "CAST(NULL AS VARCHAR) AS source, CAST(NULL AS VARCHAR) AS source_record_id WHERE FALSE")


def all_signals_sql(signals: list[ConsentSignal], config: ConsentConfig, xref: str) -> str:
    """Every choice of the customers in `xref`, counted or not (status NULL: not a choice)."""
    return " UNION ALL ".join(_signal_select(s, config, xref) for s in signals) or EMPTY_SIGNALS


COUNTED = "status IS NOT NULL AND NOT (status = 'opt_in' AND decided_at IS NULL)"
"""The choices profiles.consent_signals keeps: explicit ones, and no opt-in without a date."""


@contextmanager
def staged_choices(con: duckdb.DuckDBPyConnection, signals: list[ConsentSignal], config: ConsentConfig,
                   xref: str) -> Iterator[str]:
    """Every choice of the customers in `xref` (`all_signals_sql`), written once to a temporary
    table that the counted signals and the count of undated opt-ins both read.

    Computed in place, the choices were evaluated twice, and DuckDB pushed the COUNTED filter
    below the join with the xref, parsing the decision time of every row of the source tables
    instead of only the rows of the customers being refreshed."""
    name = "_consent_choices"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {all_signals_sql(signals, config, xref)}")
    try:
        yield name
    finally:
        con.execute(f"DROP TABLE IF EXISTS {name}")


def signals_select(choices: str) -> str:
    """profiles.consent_signals rows: the counted explicit choices among `choices` (a table of
    `all_signals_sql`'s rows)."""
    return f"SELECT * FROM {choices} WHERE {COUNTED} ORDER BY customer_id, channel, decided_at"


def consent_select(config: ConsentConfig, xref: str, signals_table: str) -> str:
    """profiles.consent rows of the customers in `xref`, from their rows of `signals_table`."""
    channels = ", ".join(f"({literal(c)})" for c in config.channels)
    return f"""
        WITH latest AS (
            SELECT customer_id, channel,
                   arg_max(struct_pack(status := status, decided_at := decided_at, source := source,
                                       source_record_id := source_record_id),
                           struct_pack(undated_opt_out := decided_at IS NULL,
                                       t := coalesce(decided_at, {OLDEST}),
                                       opt_out := status = 'opt_out',
                                       s := source, r := source_record_id)) AS choice
            FROM {signals_table}
            GROUP BY ALL
        ),
        customers AS (SELECT DISTINCT customer_id FROM {xref}),
        channels(channel) AS (VALUES {channels})
        SELECT c.customer_id, ch.channel,
               coalesce(l.choice.status, 'unknown') AS status,
               l.choice.decided_at AS decided_at,
               l.choice.source AS source,
               l.choice.source_record_id AS source_record_id
        FROM customers c CROSS JOIN channels ch
        LEFT JOIN latest l ON l.customer_id = c.customer_id AND l.channel = ch.channel
        ORDER BY c.customer_id, ch.channel
        """


def undated_opt_ins(con: duckdb.DuckDBPyConnection, choices: str) -> int:
    """Opt-ins without a date among `choices` (never counted)."""
    return int(con.execute(
        f"SELECT count(*) FILTER (WHERE status = 'opt_in' AND decided_at IS NULL) FROM {choices}"
    ).fetchall()[0][0])


def build_consent(con: duckdb.DuckDBPyConnection, config: ConsentConfig, xref: str,
                  fixed_columns: Collection[str] = ()) -> dict:
    """Write profiles.consent_signals (every counted explicit choice) and profiles.consent;
    `fixed_columns` as for `usable_signals`."""
    con.execute("CREATE SCHEMA IF NOT EXISTS profiles")
    signals, skipped = usable_signals(con, config, fixed_columns)
    with staged_choices(con, signals, config, xref) as choices:
        ignored = undated_opt_ins(con, choices)
        con.execute(f"CREATE OR REPLACE TABLE {CONSENT_SIGNALS} AS {signals_select(choices)}")
    con.execute(f"CREATE OR REPLACE TABLE {CONSENT} AS {consent_select(config, xref, CONSENT_SIGNALS)}")
    return {"skipped_signals": skipped, "undated_opt_ins_ignored": ignored}


def status_counts(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for channel, status, n in con.execute(f"SELECT channel, status, count(*) FROM {CONSENT} GROUP BY ALL ORDER BY 1, 2").fetchall():
        counts.setdefault(channel, {})[status] = int(n)
    return counts


def overridden_opt_outs(con: duckdb.DuckDBPyConnection) -> int:
    """Opt-ins standing although an opt-out at the same time or later (or undated) exists: must be 0."""
    return int(con.execute(
        f"""
        SELECT count(*) FROM {CONSENT} c
        WHERE c.status = 'opt_in' AND EXISTS (
            SELECT 1 FROM {CONSENT_SIGNALS} s
            WHERE s.customer_id = c.customer_id AND s.channel = c.channel AND s.status = 'opt_out'
              AND (s.decided_at IS NULL OR c.decided_at IS NULL OR s.decided_at >= c.decided_at))
        """
    ).fetchall()[0][0])
