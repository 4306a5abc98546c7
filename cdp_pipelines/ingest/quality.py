"""Quality gates: validate one table against its suite from config/quality.yaml with GX 1.x.

Asset checks call `validate_frame` and turn the `QualityReport` into a check result: blocking
failures stop downstream assets, warnings are only reported. The report is plain data (no GX
objects) so it can be logged, serialised and tested without Great Expectations.

Great Expectations is imported lazily (it takes seconds), and each call builds one ephemeral,
in-memory context with progress bars and analytics off: nothing is written to disk.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import sys
import time
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cdp_pipelines.ingest.quality_suites import (
    QUARANTINE_RATIO_KEY,
    QualityConfigError,
    QuarantineRatios,
    ResolvedRule,
    SkippedRule,
    get_suite,
    max_quarantined_row_ratio,
    placeholder_values,
    resolve_column,
    resolve_rules,
)
from cdp_pipelines.privacy import mask_value

SAMPLE_SIZE = 5
_GX_SAMPLE_SIZE = 20  # GX returns repeats (every duplicate row); ask for more, keep 5 distinct
_COLUMN_LIST_LIMIT = 20
_PROCESS_GLOBALS_LOCK = threading.RLock()
"""Held around work that changes process-wide state, as steps run on threads: GX's current
context and the warning filters (warnings.catch_warnings is not thread-safe)."""
_DATEUTIL_PARSEABLE = "expect_column_values_to_be_dateutil_parseable"
# Table expectations that read the row count only, not any column.
_ROW_COUNT_EXPECTATIONS = {"expect_table_row_count_to_be_between", "expect_table_row_count_to_equal"}
_GX_IMPORT_LOCK = threading.Lock()
_gx_import: threading.Thread | None = None


def start_importing_great_expectations() -> None:
    """Begin importing Great Expectations on a background thread, once per process.

    The import takes 2-3 s of Python, and the first ingest steps would each wait for it before
    validating. Started when an ingest step starts, it runs while the step reads its files
    (Arrow and DuckDB, which release the GIL); _validate_with_gx waits for it to finish before
    touching GX, so the package is never imported by two threads at once.
    """
    global _gx_import
    with _GX_IMPORT_LOCK:
        if _gx_import is None and "great_expectations" not in sys.modules:
            _gx_import = threading.Thread(target=importlib.import_module, args=("great_expectations",),
                                          name="great-expectations-import", daemon=True)
            _gx_import.start()


def _wait_for_great_expectations_import() -> None:
    with _GX_IMPORT_LOCK:
        pending = _gx_import
    if pending is not None:
        pending.join()


@dataclass(frozen=True)
class QuarantineCounts:
    """What a source's latest ingest set aside as unreadable: rows read, rows quarantined, and
    rows per kind of reason, most frequent first. Rows superseded by a later file's row are
    updates, not problems, and are left out."""

    rows_read: int
    rows_quarantined: int
    reasons: Mapping[str, int] = field(default_factory=dict)


@dataclass
class QualityReport:
    """Outcome of one suite on one table, as plain values."""

    source_name: str
    suite_name: str
    row_count: int
    passed_blocking: bool
    success: bool
    statistics: dict[str, Any]
    failures: list[dict[str, Any]]
    message: str
    skipped: list[dict[str, Any]] = field(default_factory=list)
    duration_seconds: float = 0.0

    @property
    def blocking_failures(self) -> list[dict[str, Any]]:
        return [failure for failure in self.failures if failure["severity"] == "blocking"]

    @property
    def warning_failures(self) -> list[dict[str, Any]]:
        return [failure for failure in self.failures if failure["severity"] == "warning"]

    @property
    def quarantine_warning(self) -> bool:
        """Too many rows quarantined for a warning: the check says so to the run (severity WARN),
        as rows missing downstream matter more than, say, a share of malformed emails."""
        return any(f["expectation"] == QUARANTINE_RATIO_KEY for f in self.warning_failures)

    def to_metadata(self, mask: bool = True) -> dict[str, Any]:
        """JSON-able check metadata; samples are masked unless asked otherwise (they are PII)."""
        failures = [_mask_failure(f) if mask else dict(f) for f in self.failures]
        return {
            "source": self.source_name,
            "suite": self.suite_name,
            "row_count": self.row_count,
            "passed_blocking": self.passed_blocking,
            "success": self.success,
            "blocking_failures": len(self.blocking_failures),
            "warning_failures": len(self.warning_failures),
            **self.statistics,
            "message": self.message,
            "failures": failures,
            "skipped": [dict(item) for item in self.skipped],
            "duration_seconds": round(self.duration_seconds, 3),
            "samples_masked": mask,
        }


def validate_frame(
    df: pd.DataFrame,
    *,
    suite_name: str,
    source_name: str,
    record_id_column: str,
    timestamp_column: str | None,
    required_columns: list[str],
    config_path: Path | None = None,
    column_map: Mapping[str, str | list[str]] | None = None,
    columns_present: Sequence[str] | None = None,
    quarantine: QuarantineCounts | None = None,
) -> QualityReport:
    """Run suite `suite_name` on `df` and report every failure with its severity.

    `column_map` maps canonical attributes to this table's columns (e.g. {"email": "Email"}, or
    a source's `mapping` from sources.yaml) so placeholders such as `{email}` in the YAML find
    raw source columns. Without it, `{email}` means a column named `email`.
    `columns_present`: the table's columns, when `df` holds only those `columns_read` names.
    `quarantine`: what the ingest set aside, checked against max_quarantined_row_ratio.
    """
    started = time.perf_counter()
    suite = get_suite(suite_name, config_path)
    placeholders = placeholder_values(record_id_column, timestamp_column, column_map)
    present = [str(column) for column in (df.columns if columns_present is None else columns_present)]
    wanted = [resolve_column(name, placeholders) for name in suite.required_columns]
    wanted += [record_id_column, *(required_columns or [])]
    if timestamp_column:
        wanted.append(timestamp_column)
    missing = [name for name in dict.fromkeys(wanted) if name is not None and name not in present]

    failures: list[dict[str, Any]] = []
    evaluated = 1  # the presence check always runs
    if missing:
        failures.append(_missing_columns_failure(missing, present))
    rules, skipped = resolve_rules(suite, placeholders, set(present), dt.date.today())
    if df.empty:
        evaluated += 1
        failures.append(_no_rows_failure())
    elif rules:
        outcomes = _validate_with_gx(_prepare_frame(df, rules), rules)
        evaluated += len(outcomes)
        failures += [outcome for outcome in outcomes if outcome is not None]
    if quarantine is not None:
        evaluated += 1
        too_many = quarantine_failure(quarantine, max_quarantined_row_ratio(config_path))
        failures += [too_many] if too_many else []

    statistics = _statistics(evaluated, len(failures))
    passed_blocking = not any(f["severity"] == "blocking" for f in failures)
    return QualityReport(
        source_name=source_name,
        suite_name=suite_name,
        row_count=len(df),
        passed_blocking=passed_blocking,
        success=not failures,
        statistics=statistics,
        failures=failures,
        message=_message(source_name, suite_name, len(df), evaluated, failures),
        skipped=[_skipped_dict(item) for item in skipped],
        duration_seconds=time.perf_counter() - started,
    )


def columns_read(
    columns_present: Sequence[str],
    *,
    suite_name: str,
    record_id_column: str,
    timestamp_column: str | None,
    config_path: Path | None = None,
    column_map: Mapping[str, str | list[str]] | None = None,
) -> list[str]:
    """The columns of a table (with `columns_present`) whose values validate_frame reads: a check
    may fetch only these and pass `columns_present`, as the presence check needs names only."""
    suite = get_suite(suite_name, config_path)
    placeholders = placeholder_values(record_id_column, timestamp_column, column_map)
    rules, _ = resolve_rules(suite, placeholders, set(columns_present), dt.date.today())
    read = _columns_read_by_expectations((r.spec.expectation, r.column, r.kwargs) for r in rules)
    return list(columns_present) if read is None else [c for c in columns_present if c in read]


def _columns_read_by_expectations(expectations: Iterable[tuple[str, str | None, Mapping]]) -> list[str] | None:
    """The columns (expectation, column, arguments) triples read, or None when one may read any
    column: a row_condition, a column pair, or a table-wide expectation other than the row count."""
    needed: list[str] = []
    for expectation, column, kwargs in expectations:
        if "row_condition" in kwargs:
            return None
        if column is None and expectation in _ROW_COUNT_EXPECTATIONS:
            continue
        if column is None:
            return None
        needed.append(column)
    return list(dict.fromkeys(needed))


# --- preparing the frame -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Planned:
    """How a rule is evaluated by GX: possibly on a helper column, with a different type."""

    rule: ResolvedRule
    expectation: str
    column: str | None
    kwargs: dict[str, Any]


def _prepare_frame(df: pd.DataFrame, rules: list[ResolvedRule]) -> pd.DataFrame:
    """A shallow copy in which blank text is missing, plus parsed helper columns."""
    frame = df.copy(deep=False)
    frame.columns = [str(column) for column in frame.columns]
    for column in {rule.column for rule in rules if rule.column is not None}:
        frame[column] = _blank_as_missing(frame[column])
    for rule in rules:
        if rule.spec.parse and rule.column is not None:
            frame[_parsed_name(rule.column)] = _parse_datetimes(frame[rule.column])
        if rule.spec.expectation == _DATEUTIL_PARSEABLE and rule.column is not None:
            original = frame[rule.column]
            unparsed = original.notna() & _parse_datetimes(original).isna()
            frame[_unparsed_name(rule.column)] = original.astype(object).where(unparsed, None)
    return frame


def _plan(rule: ResolvedRule) -> _Planned:
    """Translate a rule to the GX expectation that checks it on the prepared frame.

    GX's dateutil check parses row by row (about 2 s per 100k rows). The same contract is
    checked by parsing once, vectorised, and asking GX that the unparseable leftovers be null.
    """
    if rule.spec.expectation == _DATEUTIL_PARSEABLE:
        helper = _unparsed_name(rule.column)
        return _Planned(rule, "expect_column_values_to_be_null", helper, rule.kwargs)
    if rule.spec.parse:
        kwargs = {key: _as_utc_bound(value) if key in {"min_value", "max_value"} else value
                  for key, value in rule.kwargs.items()}
        return _Planned(rule, rule.spec.expectation, _parsed_name(rule.column), kwargs)
    return _Planned(rule, rule.spec.expectation, rule.column, rule.kwargs)


def _blank_as_missing(values: pd.Series) -> pd.Series:
    if not (pd.api.types.is_string_dtype(values) or values.dtype == object):
        return values
    try:
        blank = values.str.strip().eq("").fillna(False).astype(bool)
    except AttributeError:  # object column without text, e.g. datetime.date values
        return values
    return values.mask(blank) if blank.any() else values


def _parse_datetimes(values: pd.Series) -> pd.Series:
    """Parse dates/timestamps in any common layout; anything unparseable becomes NaT."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return pd.to_datetime(values, utc=True)
    with _PROCESS_GLOBALS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
        except (TypeError, ValueError, OverflowError):
            return values.map(_parse_one)


def _parse_one(value: Any) -> pd.Timestamp:
    try:
        return pd.to_datetime(value, errors="coerce", utc=True)
    except (TypeError, ValueError, OverflowError):
        return pd.NaT


def _as_utc_bound(value: Any) -> Any:
    if isinstance(value, (dt.date, str)):
        stamp = pd.Timestamp(value)
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return value


def _parsed_name(column: str) -> str:
    return f"__parsed__{column}"


def _unparsed_name(column: str) -> str:
    return f"__unparsed__{column}"


# --- running GX --------------------------------------------------------------------------------


def _validate_with_gx(frame: pd.DataFrame, rules: list[ResolvedRule]) -> list[dict | None]:
    """One failure dict (or None when it passed) per rule, in rule order."""
    _wait_for_great_expectations_import()
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    plans = [_plan(rule) for rule in rules]
    frame = _columns_read_by(plans, frame)
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    # One validation at a time in a process: GX binds suites to its "current" context, a process
    # global that each new context replaces, and steps run on threads.
    with _PROCESS_GLOBALS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The context must exist before the suite: GX binds suites to the current context.
        context = gx.get_context(mode="ephemeral", project_config=config)
        suite = gx.ExpectationSuite(name="quality_gate")
        for position, plan in enumerate(plans):
            suite.add_expectation(_build_expectation(plan, position))
        asset = context.data_sources.add_pandas("quality").add_dataframe_asset("table")
        batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(
            batch_parameters={"dataframe": frame}
        )
        result = batch.validate(
            suite,
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": _GX_SAMPLE_SIZE},
        )
    by_position = {int(r.expectation_config.meta["position"]): r for r in result.results}
    return [_failure_from_result(plan, by_position.get(i)) for i, plan in enumerate(plans)]


def _columns_read_by(plans: list[_Planned], frame: pd.DataFrame) -> pd.DataFrame:
    """Only the columns the expectations read: GX hashes the whole frame for its batch id and
    profiles every column's type, which for a wide source table cost more than the checks."""
    needed = _columns_read_by_expectations((p.expectation, p.column, p.kwargs) for p in plans)
    return frame if needed is None else frame[needed]


def _build_expectation(plan: _Planned, position: int):
    from great_expectations.expectations.registry import get_expectation_impl

    rule = plan.rule
    try:
        impl = get_expectation_impl(plan.expectation)
    except Exception as error:  # GX raises its own ExpectationNotFoundError
        raise QualityConfigError(f"unknown expectation type {rule.spec.expectation!r}") from error
    kwargs = dict(plan.kwargs)
    if plan.column is not None:
        kwargs["column"] = plan.column
    try:
        return impl(**kwargs, meta={"position": position})
    except Exception as error:  # pydantic validation of the YAML arguments
        raise QualityConfigError(
            f"expectation {rule.spec.expectation!r} on {rule.column!r}: invalid arguments: {' '.join(str(error).split())}"
        ) from error


def _failure_from_result(plan: _Planned, result: Any) -> dict[str, Any] | None:
    rule = plan.rule
    if result is not None and result.success:
        return None
    details = dict(result.result or {}) if result is not None else {}
    failure = {
        "expectation": rule.spec.expectation,
        "column": rule.column,
        "severity": rule.spec.severity,
        "observed_value": _plain(details.get("observed_value")),
        "unexpected_count": _plain(details.get("unexpected_count")),
        "unexpected_percent": _rounded(details.get("unexpected_percent")),
        "sample": _distinct_sample(details.get("partial_unexpected_list") or []),
    }
    error_text = _exception_message(result.exception_info) if result is not None else "no result"
    if error_text:
        failure["error"] = error_text
    failure["problem"] = _problem(rule, failure, error_text)
    return failure


def _exception_message(info: Any) -> str | None:
    """GX reports errors flat or keyed by metric; keep the first message, never the traceback."""
    if not isinstance(info, Mapping):
        return None
    candidates = [info] if "raised_exception" in info else list(info.values())
    for candidate in candidates:
        if isinstance(candidate, Mapping) and candidate.get("raised_exception"):
            text = str(candidate.get("exception_message") or "error").strip()
            return text.splitlines()[0] if text else "error"
    return None


# --- describing failures -----------------------------------------------------------------------


def _problem(rule: ResolvedRule, failure: dict[str, Any], error_text: str | None) -> str:
    """One clause, without any data value (messages are not masked)."""
    kind = rule.spec.expectation
    where = f"column '{rule.column}'" if rule.column else "table"
    if error_text:
        return f"{where}: {kind} could not be evaluated ({error_text})"
    count, percent = failure["unexpected_count"], failure["unexpected_percent"]
    if kind == "expect_table_row_count_to_be_between":
        return f"table has {failure['observed_value']} rows, expected {_range(rule.kwargs)}"
    if count is None:
        return f"{where} fails {kind}"
    share = _percent(percent) + _allowed(rule.kwargs.get("mostly"))
    what = rule.spec.problem or {
        "expect_column_values_to_be_unique": "duplicate values",
        "expect_column_values_to_not_be_null": "missing values",
        _DATEUTIL_PARSEABLE: "values that do not parse as timestamps",
    }.get(kind, f"values failing {kind}")
    return f"{where} has {count:,} {what} ({share})"


def quarantine_failure(counts: QuarantineCounts, ratios: QuarantineRatios) -> dict[str, Any] | None:
    """A failure when the quarantined share of the rows read is above a threshold (the blocking
    one first), naming the main reasons; None when it is within them."""
    if counts.rows_read == 0:
        return None
    share = counts.rows_quarantined / counts.rows_read
    for severity in ("blocking", "warning"):
        limit = getattr(ratios, severity)
        if limit is None or share <= limit:
            continue
        main = list(counts.reasons.items())[:3]
        reasons = "; main reasons: " + ", ".join(f"{reason} ({rows:,})" for reason, rows in main) if main else ""
        return {
            "expectation": QUARANTINE_RATIO_KEY,
            "column": None,
            "severity": severity,
            "observed_value": round(share, 6),
            "unexpected_count": counts.rows_quarantined,
            "unexpected_percent": _rounded(100.0 * share),
            "sample": [],
            "reasons": dict(main),
            "problem": f"{counts.rows_quarantined:,} of {counts.rows_read:,} rows read "
                       f"({_percent(100.0 * share)}) were quarantined, above the allowed "
                       f"{_percent(100.0 * limit)} ({QUARANTINE_RATIO_KEY}.{severity}){reasons}",
        }
    return None


def _missing_columns_failure(missing: list[str], present: list[str]) -> dict[str, Any]:
    found = present[:_COLUMN_LIST_LIMIT] + (["..."] if len(present) > _COLUMN_LIST_LIMIT else [])
    return {
        "expectation": "expect_table_columns_to_include",
        "column": None,
        "severity": "blocking",
        "observed_value": {"missing": missing, "found": present},
        "unexpected_count": len(missing),
        "unexpected_percent": None,
        "sample": [],
        "problem": "missing required columns "
        + ", ".join(f"'{name}'" for name in missing)
        + f" (found: {', '.join(found) or 'none'})",
    }


def _no_rows_failure() -> dict[str, Any]:
    return {
        "expectation": "expect_table_row_count_to_be_between",
        "column": None,
        "severity": "blocking",
        "observed_value": 0,
        "unexpected_count": None,
        "unexpected_percent": None,
        "sample": [],
        "problem": "table has no rows",
    }


def _message(source: str, suite: str, rows: int, evaluated: int, failures: list[dict]) -> str:
    blocking = [f["problem"] for f in failures if f["severity"] == "blocking"]
    warning = [f["problem"] for f in failures if f["severity"] == "warning"]
    scope = f"suite '{suite}', {rows:,} rows"
    if blocking:
        text = f"{source}: " + "; ".join(blocking) + f" (blocking; {scope})."
    else:
        passed = evaluated - len(warning)
        text = f"{source}: passed all blocking checks ({passed} of {evaluated} passed; {scope})."
    if warning:
        label = "warning" if len(warning) == 1 else "warnings"
        text += f" {len(warning)} {label}: " + "; ".join(warning) + "."
    return text


def _statistics(evaluated: int, unsuccessful: int) -> dict[str, Any]:
    successful = evaluated - unsuccessful
    return {
        "evaluated_expectations": evaluated,
        "successful_expectations": successful,
        "unsuccessful_expectations": unsuccessful,
        "success_percent": round(100.0 * successful / evaluated, 2) if evaluated else 100.0,
    }


def _skipped_dict(item: SkippedRule) -> dict[str, Any]:
    return {"expectation": item.expectation, "column": item.column,
            "severity": item.severity, "reason": item.reason}


def _percent(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value == 0:
        return "0%"
    if value < 0.1:
        return "<0.1%"
    text = f"{value:.1f}" if value < 10 else f"{value:.0f}"
    return text.removesuffix(".0") + "%"


def _allowed(mostly: Any) -> str:
    if mostly is None or float(mostly) >= 1:
        return ""
    return f", at most {_percent(round(100.0 * (1 - float(mostly)), 6))} allowed"


def _range(kwargs: Mapping[str, Any]) -> str:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if high is None:
        return f"at least {low}"
    return f"at most {high}" if low is None else f"between {low} and {high}"


# --- plain values and masking ------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Only str/int/float/bool/None/list/dict, as Dagster metadata and JSON want."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return None if value != value else float(value)
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, (dt.date, pd.Timestamp)):
        return _plain(value.item())  # numpy scalars
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, (dt.date, pd.Timestamp)):
        return value.isoformat()
    return str(value)


def _rounded(value: Any) -> float | None:
    value = _plain(value)
    return round(float(value), 4) if isinstance(value, (int, float)) else None


def _distinct_sample(values: list[Any]) -> list[Any]:
    sample: list[Any] = []
    for value in values:
        plain = _plain(value)
        if plain not in sample:
            sample.append(plain)
        if len(sample) == SAMPLE_SIZE:
            break
    return sample


def _mask_failure(failure: dict[str, Any]) -> dict[str, Any]:
    masked = dict(failure)
    column = failure.get("column")
    masked["sample"] = [mask_value(value, column) for value in failure.get("sample") or []]
    observed = failure.get("observed_value")
    if isinstance(observed, str) or (isinstance(observed, list) and column):
        masked["observed_value"] = _plain(
            [mask_value(v, column) for v in observed] if isinstance(observed, list)
            else mask_value(observed, column)
        )
    return masked
