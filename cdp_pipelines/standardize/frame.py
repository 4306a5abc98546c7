"""standardize_frame: every canonical attribute of a raw frame, normalised in one pass.

Each attribute is normalised once per distinct value (pd.factorize, then a take), because
customer data repeats itself: a million rows rarely hold more than a few hundred thousand
distinct emails or phones, and the libraries doing the work cost microseconds per value.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from cdp_pipelines.vocabulary import CODE_IDENTIFIERS, MAPPABLE_ATTRIBUTES, STANDARDIZED_COLUMNS
from cdp_pipelines.standardize import addresses, dates, emails, names, phones, postcodes
from cdp_pipelines.standardize.config import StandardizeConfig, default_config
from cdp_pipelines.standardize.junk import WHITESPACE, Status, is_blank, is_placeholder, placeholder_mask

CANONICAL_COLUMNS: tuple[str, ...] = STANDARDIZED_COLUMNS
"""Identity attributes of docs/architecture.md, in the order standardized tables hold them."""

OUTPUT_COLUMNS: tuple[str, ...] = (*CANONICAL_COLUMNS, "observed_at")
INPUT_COLUMNS: tuple[str, ...] = (*MAPPABLE_ATTRIBUTES, "observed_at")
IDENTIFIER_COLUMNS: tuple[str, ...] = CODE_IDENTIFIERS
_KEY_SEPARATOR = "\x1f"
PARALLEL_MIN_ROWS = 100_000
"""Frames at least this long spread the costly attributes over worker processes."""
_PARALLEL_MIN_UNIQUES = 20_000

Classifier = Callable[[Any], tuple[Any, Status]]


@dataclass(frozen=True)
class StandardizeOutcome:
    """Normalised frame plus, per input attribute, how many rows held junk or invalid values."""

    frame: pd.DataFrame
    junk_counts: dict[str, int] = field(default_factory=dict)
    invalid_counts: dict[str, int] = field(default_factory=dict)


@dataclass
class _Mapped:
    codes: np.ndarray  # per row: index into per_unique, -1 where missing
    per_unique: np.ndarray  # one result per distinct value, then None for code -1
    junk: int
    invalid: int

    def text(self, index: pd.Index, position: int | None = None) -> pd.Series:
        """One text result per row (or element `position` of tuple results), missing where the
        value or the result is. Built on the distinct results and spread to rows by an Arrow
        take: a Python object per row would hold this process's lock for every row."""
        results = self.per_unique[:-1]
        if position is not None:
            results = [None if r is None else r[position] for r in results]
        distinct = pa.array(results, type=pa.large_string(), from_pandas=True)
        per_row = distinct.take(pa.array(self.codes, mask=self.codes < 0))
        return pd.Series(pd.arrays.ArrowStringArray(per_row, dtype=_TEXT), index=index)


def _classify_many(classify: Classifier, values: list[Any]) -> list[tuple[Any, Status]]:
    return [classify(value) for value in values]


@dataclass
class _PendingMap:
    """Distinct values being classified (in worker processes, or here when collected)."""

    codes: np.ndarray
    uniques: Any
    classify: Classifier
    futures: list[Future] | None = None

    def result(self) -> _Mapped:
        """The classification spread back to rows, counted by status."""
        if self.futures is None:
            outcomes = _classify_many(self.classify, self.uniques)
        else:
            outcomes = [outcome for future in self.futures for outcome in future.result()]
        codes = self.codes
        results = np.empty(len(outcomes) + 1, dtype=object)  # last slot serves code -1 (missing)
        results[:-1] = [value for value, _ in outcomes]
        results[-1] = None
        statuses = np.array([status.value for _, status in outcomes] or [""], dtype=object)[: len(outcomes)]
        rows_per_unique = np.bincount(codes[codes >= 0], minlength=len(self.uniques))
        return _Mapped(
            codes=codes,
            per_unique=results,
            junk=int(rows_per_unique[statuses == Status.JUNK.value].sum()),
            invalid=int(rows_per_unique[statuses == Status.INVALID.value].sum()),
        )


def _start_map(
    values: pd.Series | np.ndarray, classify: Classifier, pool: Executor | None = None, workers: int = 1
) -> _PendingMap:
    """Find the distinct values and, when there are enough of them to pay off, hand them to the
    worker processes at once; the result is collected later."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    pending = _PendingMap(codes, uniques, classify)
    if pool is not None and len(uniques) >= _PARALLEL_MIN_UNIQUES:
        chunks = np.array_split(np.asarray(uniques, dtype=object), workers * 2)
        pending.futures = [pool.submit(_classify_many, classify, chunk.tolist()) for chunk in chunks]
    return pending


def _map_unique(
    values: pd.Series | np.ndarray, classify: Classifier, pool: Executor | None = None, workers: int = 1
) -> _Mapped:
    """Classify each distinct value once and spread results back to rows, counting by status."""
    return _start_map(values, classify, pool, workers).result()


def _paired_keys(values: pd.Series, context: pd.Series) -> pd.Series:
    """value + separator + context, so (phone, region) pairs are classified once each."""
    return values.astype("str") + _KEY_SEPARATOR + context.astype("str").fillna("")


def _split_key(key: str) -> tuple[str, str | None]:
    value, context = key.rsplit(_KEY_SEPARATOR, 1)
    return value, context or None


_TEXT = pd.StringDtype("pyarrow", na_value=np.nan)
"""pandas' default "str" dtype, which the standardized columns have."""


class _Standardizer:
    """Holds the raw frame, the output columns and the counts while attributes are processed."""

    def __init__(
        self, raw: pd.DataFrame, default_region: str, date_formats: tuple[str, ...] | None, config: StandardizeConfig,
        pool: Executor | None, workers: int,
    ) -> None:
        self.raw = raw
        self.pool = pool
        self.workers = workers
        self.index = raw.index
        self.default_region = default_region.upper()
        self.config = config
        self.out: dict[str, Any] = {}
        self.junk: dict[str, int] = {}
        self.invalid: dict[str, int] = {}
        self.date_formats = date_formats or config.date_formats(True)
        self.pending: dict[str, _PendingMap] = {}

    def has(self, column: str) -> bool:
        return column in self.raw.columns

    def column(self, column: str) -> pd.Series:
        return self.raw[column] if self.has(column) else pd.Series(None, index=self.index, dtype="str")

    def record(self, attribute: str, mapped: _Mapped) -> _Mapped:
        if self.has(attribute):
            self.junk[attribute] = self.junk.get(attribute, 0) + mapped.junk
            self.invalid[attribute] = self.invalid.get(attribute, 0) + mapped.invalid
        return mapped

    def pool_work(self) -> dict[str, tuple[pd.Series, Classifier]]:
        """What the worker processes classify: per attribute, the values (phones and postcodes
        paired with the row's country) and the picklable classifier. Needs country() first."""
        config, work = self.config, {}
        if self.has("phone"):
            work["phone"] = (_paired_keys(self.raw["phone"], self.region_context()).where(self.raw["phone"].notna()),
                             partial(_classify_phone_key, default_region=self.default_region, config=config))
        if self.has("email"):
            work["email"] = (self.raw["email"], partial(emails.classify_email, config=config))
        for part in ("first_name", "last_name"):
            work[part] = (self.column(part), partial(_classify_name_part, part, config))
        if self.has("full_name"):
            work["full_name"] = (self.raw["full_name"], partial(_classify_full_name, config=config))
        if self.has("date_of_birth"):
            work["date_of_birth"] = (self.raw["date_of_birth"], partial(
                dates.classify_date, formats=self.date_formats, reference=date.today(), config=config))
        if self.has("address_line"):
            work["address_line"] = (self.raw["address_line"], partial(addresses.classify_address_line, config=config))
        if self.has("postcode"):
            country = self.out.get("country", pd.Series(None, index=self.index, dtype="str"))
            work["postcode"] = (_paired_keys(self.raw["postcode"], country).where(self.raw["postcode"].notna()),
                                partial(_classify_postcode_key, default_country=self.default_region, config=config))
        if self.has("social_handle"):
            work["social_handle"] = (self.raw["social_handle"], partial(_classify_social_handle, config=config))
        return work

    def start_pool_work(self) -> None:
        """Hand every attribute to the worker processes before collecting any, so they keep
        working while this process spreads earlier results to rows (without a pool, each is
        classified here when collected)."""
        self.pending = {name: _start_map(values, classify, self.pool, self.workers)
                        for name, (values, classify) in self.pool_work().items()}

    def mapped(self, name: str) -> _Mapped:
        """The classification of a pool_work attribute started by start_pool_work."""
        return self.pending.pop(name).result()

    def simple(self, attribute: str, classify: Classifier) -> None:
        """One column through one in-process classifier."""
        if self.has(attribute):
            mapped = _map_unique(self.raw[attribute], classify)
            self.out[attribute] = self.record(attribute, mapped).text(self.index)

    def pooled(self, attribute: str) -> None:
        """One column of pool_work, its result as text."""
        if self.has(attribute):
            self.out[attribute] = self.record(attribute, self.mapped(attribute)).text(self.index)

    def country(self) -> None:
        self.simple("country", lambda v: postcodes.classify_country(v, self.config))

    def region_context(self) -> pd.Series:
        """Per-row phone region: the row's country when known, else the default region."""
        country = self.out.get("country")
        if country is None:
            return pd.Series(self.default_region, index=self.index, dtype="str")
        return country.fillna(self.default_region)

    def phone(self) -> None:
        if not self.has("phone"):
            return
        pairs = self.record("phone", self.mapped("phone"))
        self.out["phone"] = pairs.text(self.index, 0)
        self.out["phone_kind"] = pairs.text(self.index, 1)

    def person_names(self) -> None:
        """first/last from their columns, filled from a split full_name; full_name rebuilt from parts."""
        config = self.config
        first, last = (self.record(part, self.mapped(part)).text(self.index) for part in ("first_name", "last_name"))
        full = pd.Series(None, index=self.index, dtype="str")
        if self.has("full_name"):
            parts = self.record("full_name", self.mapped("full_name"))
            first = first.fillna(parts.text(self.index, 0))
            last = last.fillna(parts.text(self.index, 1))
            full = parts.text(self.index, 2)
        built = first.str.cat(last, sep=" ", na_rep="").str.strip().replace("", None)
        self.out["first_name"], self.out["last_name"] = first, last
        self.out["full_name"] = full.fillna(built)
        given = _map_unique(first, lambda v: (names.resolve_nickname(v, config), Status.OK))
        self.out["given_name"] = given.text(self.index)

    def date_of_birth(self) -> None:
        if not self.has("date_of_birth"):
            return
        mapped = self.record("date_of_birth", self.mapped("date_of_birth"))
        per_unique = np.array([np.datetime64(d, "D") if d else np.datetime64("NaT") for d in mapped.per_unique])
        days = pa.array(per_unique.astype("datetime64[D]")[mapped.codes], from_pandas=True, type=pa.date32())
        self.out["date_of_birth"] = pd.Series(days, index=self.index, dtype=pd.ArrowDtype(pa.date32()))

    def observed_at(self, formats: tuple[str, ...] | None) -> None:
        if not self.has("observed_at"):
            return
        raw = self.raw["observed_at"]
        parsed = dates.parse_timestamps(raw, formats, self.config)
        parsed.index = self.index
        failed = _map_unique(raw.where(parsed.isna()), lambda v: _failure_status(v, "observed_at", self.config))
        self.record("observed_at", failed)
        self.out["observed_at"] = parsed

    def identifiers(self) -> None:
        for attribute in IDENTIFIER_COLUMNS:
            if self.has(attribute):
                mapped = _map_identifier(self.raw[attribute], attribute, self.config)
                self.out[attribute] = self.record(attribute, mapped).text(self.index)
        self.pooled("social_handle")

    def frame(self) -> pd.DataFrame:
        columns = {}
        for column in OUTPUT_COLUMNS:
            if column in self.out:
                columns[column] = self.out[column]
            elif column == "date_of_birth":
                columns[column] = pd.Series(pd.array([None] * len(self.index), dtype=pd.ArrowDtype(pa.date32())), index=self.index)
            elif column == "observed_at":
                columns[column] = pd.Series(pd.NaT, index=self.index, dtype="datetime64[us]")
            else:
                columns[column] = pd.Series(None, index=self.index, dtype="str")
        return pd.DataFrame(columns, index=self.index)


def _classify_name_part(attribute: str, config: StandardizeConfig, value: Any) -> tuple[str | None, Status]:
    return names.classify_name_part(value, attribute, config)


def _classify_postcode_key(key: str, default_country: str, config: StandardizeConfig) -> tuple[str | None, Status]:
    """Postcode for a "postcode<sep>country" key built by _paired_keys."""
    value, country = _split_key(key)
    return postcodes.classify_postcode(value, country, default_country=default_country, config=config)


def _classify_phone_key(key: str, default_region: str, config: StandardizeConfig) -> tuple[tuple[str, str] | None, Status]:
    """(E.164, kind) for a "phone<sep>region" key built by _paired_keys."""
    value, region = _split_key(key)
    return phones.classify_phone_with_kind(value, region or default_region, config)


def _classify_full_name(value: Any, config: StandardizeConfig) -> tuple[tuple[str | None, str | None, str | None] | None, Status]:
    """(first, last, full) match forms from a full name; full keeps the middle names, not titles."""
    if is_blank(value):
        return None, Status.MISSING
    if is_placeholder(value, "full_name", config):
        return None, Status.JUNK
    _, first, middle, last, _ = names.split_name(value)
    first, middle, last = (names.clean_name_part(p) for p in (first, middle, last))
    full = " ".join(p for p in (first, middle, last) if p)
    return ((first, last, full), Status.OK) if full else (None, Status.INVALID)


def _failure_status(value: Any, attribute: str, config: StandardizeConfig) -> tuple[None, Status]:
    """Why a non-empty value did not parse: placeholder junk or an invalid value."""
    if is_blank(value):
        return None, Status.MISSING
    return None, Status.JUNK if is_placeholder(value, attribute, config) else Status.INVALID


def _map_identifier(values: pd.Series, attribute: str, config: StandardizeConfig) -> _Mapped:
    """_classify_identifier for a whole column, vectorised over its distinct values (identifiers
    are mostly distinct, so per-value Python would dominate the stage at a million rows)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    text = pd.Series(np.asarray(uniques, dtype=object)).astype("str")
    blank = (text.str.strip() == "").to_numpy(dtype=bool)
    junk = ~blank & placeholder_mask(text, attribute, config)
    cleaned = text.str.replace(f"[{WHITESPACE}]+", "", regex=True).str.upper().to_numpy(dtype=object)
    cleaned[blank | junk] = None
    rows_per_unique = np.bincount(codes[codes >= 0], minlength=len(uniques))
    return _Mapped(codes=codes, per_unique=np.append(cleaned, None), junk=int(rows_per_unique[junk].sum()), invalid=0)


def _classify_identifier(value: Any, attribute: str, config: StandardizeConfig) -> tuple[str | None, Status]:
    """Trimmed, inner whitespace removed, upper-cased; placeholders are junk."""
    if is_blank(value):
        return None, Status.MISSING
    if is_placeholder(value, attribute, config):
        return None, Status.JUNK
    return "".join(str(value).split()).upper(), Status.OK


def _classify_social_handle(value: Any, config: StandardizeConfig) -> tuple[str | None, Status]:
    """Lower-case handle without leading "@" or profile URL; invalid when it breaks the pattern."""
    if is_blank(value):
        return None, Status.MISSING
    if is_placeholder(value, "social_handle", config):
        return None, Status.JUNK
    handle = str(value).strip().rstrip("/").rsplit("/", 1)[-1].lstrip("@").lower()
    return (handle, Status.OK) if config.social_handle.match(handle) else (None, Status.INVALID)


def standardize_frame(
    raw: pd.DataFrame,
    *,
    default_region: str = "GB",
    date_formats: tuple[str, ...] | None = None,
    timestamp_formats: tuple[str, ...] | None = None,
    config: StandardizeConfig | None = None,
    workers: int | None = None,
) -> StandardizeOutcome:
    """Normalise the canonical attribute columns of `raw` (raw strings, any subset).

    The result has every column of OUTPUT_COLUMNS on raw's index; attributes absent from
    `raw` are all-null. Country is never defaulted, but `default_region` is used to read
    phones and postcodes of rows without a country. Counts cover only columns present in raw.
    `workers` processes share the attributes classified value by value in Python (phones,
    emails, names, dates of birth, postcodes, address lines, social handles), so two sources
    standardized at once do not queue on this process's GIL; default: up to two workers for
    frames of PARALLEL_MIN_ROWS rows or more, else none; 1 keeps everything in-process.
    """
    config = config or default_config()
    if workers is None:
        workers = _default_workers(len(raw))
    if workers <= 1:
        return _standardize(raw, default_region, date_formats, timestamp_formats, config, None, 1)
    pool = _pool(workers)
    try:
        return _standardize(raw, default_region, date_formats, timestamp_formats, config, pool, workers)
    except BrokenProcessPool:
        _discard_pool(workers, pool)  # a worker died (killed, out of memory): start afresh once
        return _standardize(raw, default_region, date_formats, timestamp_formats, config, _pool(workers), workers)


def _default_workers(rows: int) -> int:
    return min(2, os.cpu_count() or 1) if rows >= PARALLEL_MIN_ROWS else 1


def start_workers_for(rows: int) -> None:
    """Start, in the background, the worker processes a frame of `rows` rows will be standardized
    with (none for a small frame). Each imports the classifiers' libraries, about 1.5 s of CPU; the
    ingest step calls this once it has staged a large source, so that start overlaps the reading
    of the other sources instead of delaying the first large source's standardization."""
    workers = _default_workers(rows)
    if workers > 1:
        pool = _pool(workers)
        for _ in range(workers):  # one task per worker: each submit finding no idle worker starts one
            pool.submit(_ready)


def _ready() -> None:
    """A task that does nothing: running it means the worker has started and imported this module."""


_POOLS: dict[int, ProcessPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(workers: int) -> ProcessPoolExecutor:
    """A pool of `workers` processes kept for the life of this process: starting interpreters
    costs seconds, and one run standardizes several large sources one after another."""
    with _POOLS_LOCK:  # steps standardizing at once share one pool
        if workers not in _POOLS:
            context = multiprocessing.get_context("spawn")  # safe inside threaded hosts such as Dagster
            _POOLS[workers] = ProcessPoolExecutor(max_workers=workers, mp_context=context)
        return _POOLS[workers]


@atexit.register
def _shutdown_pool() -> None:
    while _POOLS:
        _POOLS.popitem()[1].shutdown(wait=True, cancel_futures=True)


def _discard_pool(workers: int, pool: ProcessPoolExecutor) -> None:
    """Shut down `pool`, which lost a worker, killing its other workers first; the next _pool
    call starts a new one (unless another step standardizing at once already did).

    A worker killed while it waited for a task dies holding the task queue's lock, so the other
    workers wait on that lock forever, and the executor stops them only with SIGTERM, which a
    process started with SIGTERM ignored never sees: the shutdown would then hang the run.
    (Python 3.14 adds ProcessPoolExecutor.kill_workers; until then the executor's own process
    table is the only handle on its workers.)"""
    with _POOLS_LOCK:
        if _POOLS.get(workers) is pool:
            del _POOLS[workers]
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.kill()
    pool.shutdown(wait=True, cancel_futures=True)


def _standardize(
    raw: pd.DataFrame,
    default_region: str,
    date_formats: tuple[str, ...] | None,
    timestamp_formats: tuple[str, ...] | None,
    config: StandardizeConfig,
    pool: Executor | None,
    workers: int,
) -> StandardizeOutcome:
    standardizer = _Standardizer(raw, default_region, date_formats, config, pool, workers)
    standardizer.country()
    standardizer.start_pool_work()
    standardizer.phone()
    standardizer.pooled("email")
    standardizer.person_names()
    standardizer.date_of_birth()
    standardizer.pooled("address_line")
    standardizer.simple("city", lambda v: addresses.classify_city(v, standardizer.config))
    standardizer.pooled("postcode")
    standardizer.identifiers()
    standardizer.observed_at(timestamp_formats)
    return StandardizeOutcome(standardizer.frame(), dict(standardizer.junk), dict(standardizer.invalid))
