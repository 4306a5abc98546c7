"""Dates of birth and event timestamps from the many ways sources write them."""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import lru_cache

import pandas as pd

from cdp_pipelines.standardize.config import StandardizeConfig, default_config
from cdp_pipelines.standardize.junk import Status, is_blank, is_placeholder

_ISO_DATETIME_PREFIX = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ]\d")
_SPACES = re.compile(r"\s+")
_EPOCH_UNITS = {10: "s", 13: "ms"}
_UTC_US = "datetime64[us, UTC]"


def _clean_date_text(text: str) -> str:
    """Trimmed, commas dropped, single spaces; an ISO date-time keeps only its date."""
    text = _SPACES.sub(" ", text.replace(",", " ")).strip()
    iso = _ISO_DATETIME_PREFIX.match(text)
    return iso.group(1) if iso else text


def _strptime_first(text: str, formats: tuple[str, ...]) -> date | None:
    for fmt in formats:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def classify_date(
    value: object,
    formats: tuple[str, ...] | None = None,
    dayfirst: bool = True,
    *,
    reference: date | None = None,
    config: StandardizeConfig | None = None,
) -> tuple[date | None, Status]:
    """Date of birth and what happened; impossible or implausible dates are invalid."""
    if is_blank(value):
        return None, Status.MISSING
    config = config or default_config()
    if isinstance(value, datetime):
        parsed: date | None = value.date()
    elif isinstance(value, date):
        parsed = value
    else:
        if is_placeholder(str(value), "date_of_birth", config):
            return None, Status.JUNK
        parsed = _strptime_first(_clean_date_text(str(value)), formats or config.date_formats(dayfirst))
    if parsed is None or parsed.year < config.earliest_birth_year or parsed > (reference or date.today()):
        return None, Status.INVALID
    return parsed, Status.OK


def parse_date(
    value: object,
    formats: tuple[str, ...] | None = None,
    dayfirst: bool = True,
    *,
    reference: date | None = None,
) -> date | None:
    """Date of birth from ISO, DD/MM/YYYY, DD-MM-YYYY, YYYY/MM/DD, "12 Mar 1985"…

    Formats are tried in order (default: config, day-first or month-first list). Impossible
    dates (1985-02-30) and dates before the configured earliest birth year or after
    `reference` (default today) give None.
    """
    if not isinstance(value, (str, type(None))):
        return classify_date(value, formats, dayfirst, reference=reference)[0]
    return _parse_date_cached(value, formats, dayfirst, reference or date.today())


@lru_cache(maxsize=65536)
def _parse_date_cached(value: str | None, formats: tuple[str, ...] | None, dayfirst: bool, reference: date) -> date | None:
    return classify_date(value, formats, dayfirst, reference=reference)[0]


def parse_timestamps(
    values: pd.Series, formats: tuple[str, ...] | None = None, config: StandardizeConfig | None = None
) -> pd.Series:
    """Vectorised event timestamps as naive UTC datetime64[us]; NaT where nothing parses.

    ISO 8601 (with Z or an offset, converted to UTC) first, then each configured format read as
    UTC, then Unix epoch seconds/milliseconds when enabled. Column-wide parsing keeps a
    million mostly distinct timestamps to about a second.
    """
    config = config or default_config()
    text = pd.Series(values, dtype="str", copy=False).str.strip()
    parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce").astype(_UTC_US)
    pending = parsed.isna() & text.notna() & (text != "")
    for fmt in formats if formats is not None else config.timestamp_formats:
        if not pending.any():
            break
        parsed[pending] = pd.to_datetime(text[pending], format=fmt, utc=True, errors="coerce").astype(_UTC_US)
        pending &= parsed.isna()
    if config.accept_epoch_timestamps and pending.any():
        for length, unit in _EPOCH_UNITS.items():
            epoch = pending & text.str.fullmatch(rf"\d{{{length}}}").fillna(False).astype(bool)
            if epoch.any():
                parsed[epoch] = pd.to_datetime(text[epoch].astype("int64"), unit=unit, utc=True).astype(_UTC_US)
    parsed = parsed.dt.tz_convert(None).astype("datetime64[us]")
    return parsed.where(parsed >= pd.Timestamp(config.earliest_timestamp))


@lru_cache(maxsize=65536)
def parse_timestamp(value: str | None, formats: tuple[str, ...] | None = None) -> datetime | None:
    """One event timestamp as a naive UTC datetime, or None (same rules as parse_timestamps)."""
    if is_blank(value):
        return None
    parsed = parse_timestamps(pd.Series([value], dtype="str"), formats).iloc[0]
    return None if pd.isna(parsed) else parsed.to_pydatetime()
