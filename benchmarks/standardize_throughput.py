"""Throughput of standardize_frame on a synthetic raw frame with realistic repetition.

Usage: python benchmarks/standardize_throughput.py --rows 1000000 [--json out.json]

Builds messy raw strings (mixed phone formats, gmail aliases, nicknames, several date formats,
placeholder junk) with roughly 40% distinct emails, phones and names, times each attribute on
its own and then the whole frame, and prints a table followed by the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cdp_pipelines.standardize.frame import INPUT_COLUMNS, standardize_frame  # noqa: E402

FIRST = ["Robert", "Bob", "Elizabeth", "Liz", "James", "Jim", "Mary", "Sarah", "Mohammed", "Zoë",
         "William", "Bill", "Olivia", "Amelia", "Jack", "Harry", "Sophie", "Chloe", "Daniel", "Dan"]
LAST = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "O'Neil", "Smith-Jones",
        "Patel", "Khan", "Evans", "Thomas", "Roberts", "Walker", "Wright", "McDonald"]
DOMAINS = ["gmail.com", "googlemail.com", "hotmail.co.uk", "yahoo.co.uk", "outlook.com", "btinternet.com"]
STREET_TYPES = ["Street", "St", "St.", "Road", "Rd", "Avenue", "Ave", "Lane", "Close"]
STREETS = ["High", "Station", "Church", "Park", "Victoria", "Green", "Manor", "Kings", "Queens", "Mill"]
CITIES = ["London", "LONDON", "Manchester", "St. Albans", "Leeds", "Bristol", "Glasgow", "Cardiff"]
AREAS = ["SW", "SE", "N", "E", "W", "NW", "EC", "M", "B", "LS", "BS", "G", "CF", "AL"]
SYLLABLES = ["ash", "bel", "cal", "dar", "el", "fen", "gar", "hal", "is", "jor", "kel", "lin", "mar",
             "nor", "ol", "per", "quin", "ros", "sal", "tor", "ul", "ver", "wil", "yor", "zan",
             "brad", "chad", "den", "fair", "glen", "hart", "kings", "lang", "mont", "new", "red"]
SURNAME_ENDINGS = ["ford", "ton", "ley", "wood", "field", "worth", "well", "by", "ham", "more", "stone",
                   "bridge", "brook", "croft", "dale", "hurst", "land", "man", "shaw", "son"]
COUNTRIES = ["UK", "United Kingdom", "GB", "England", "gb", None]
JUNK = ["N/A", "unknown", "-", "test", "none", ""]


def _pool(count: int, make) -> np.ndarray:
    return np.array([make(i) for i in range(count)], dtype=object)


def _sample(rng: np.random.Generator, pool: np.ndarray, rows: int, present: float = 1.0, junk: float = 0.01) -> np.ndarray:
    """Rows drawn from a pool (skewed so some values repeat a lot), with nulls and junk mixed in."""
    picks = pool[np.minimum(rng.zipf(1.3, rows) - 1 + rng.integers(0, len(pool), rows) // 2, len(pool) - 1)]
    picks = picks.copy()
    picks[rng.random(rows) > present] = None
    junk_rows = rng.random(rows) < junk
    picks[junk_rows] = rng.choice(np.array(JUNK, dtype=object), junk_rows.sum())
    return picks


def synthetic_raw(rows: int, seed: int = 7) -> pd.DataFrame:
    """A raw frame shaped like a union of sources: ~400k distinct people among the rows."""
    rng = np.random.default_rng(seed)
    people = max(rows * 2 // 5, 10)
    r = np.random.default_rng(seed + 1)
    first = r.choice(FIRST + [a + b for a in SYLLABLES for b in ("a", "o", "ie", "en", "ar")], people)
    last = r.choice(LAST + [a.title() + b for a in SYLLABLES for b in SURNAME_ENDINGS], people)
    house, street, street_type, flat, area_digit = (r.integers(0, n, people) for n in (300, 10, 9, 40, 10_000))
    suffix = r.integers(0, 10_000, people)
    mobile = r.integers(10_000_000, 99_999_999, people)

    def email(i: int) -> str:
        local = f"{first[i]}.{last[i]}{suffix[i]}".replace("'", "")
        address = [local, local.upper(), f"{local}+shop", local.lower()][i % 4] + "@" + DOMAINS[i % len(DOMAINS)]
        return f" {address} " if i % 9 == 0 else address

    def phone(i: int) -> str:
        digits = f"7{(5, 7, 8, 9, 6)[i % 5]}{mobile[i]:08d}"
        return [f"0{digits}", f"+44 {digits[:4]} {digits[4:]}", f"0{digits[:4]}-{digits[4:7]}-{digits[7:]}",
                f"(0){digits}", "00000000000"][i % 4 if i % 97 else 4]

    def full_name(i: int) -> str:
        name = f"{first[i]} {last[i]}{'' if i % 50 else ' Jr'}"
        return name.upper() if i % 7 == 0 else (f"Dr {name}" if i % 31 == 0 else name)

    def dob(i: int) -> str:
        day, month, year = 1 + i % 28, 1 + (i // 28) % 12, 1930 + (i // 336) % 75
        return [f"{year}-{month:02d}-{day:02d}", f"{day:02d}/{month:02d}/{year}", f"{day} Mar {year}",
                f"{year}-02-30"][i % 4 if i % 53 else 3]

    def address(i: int) -> str:
        return f"{1 + house[i]} {STREETS[street[i]]} {STREET_TYPES[street_type[i]]}, Flat {flat[i]}"

    def postcode(i: int) -> str:
        code = f"{AREAS[i % len(AREAS)]}{1 + area_digit[i] % 20}{area_digit[i] % 10}{'ABDEFGHJLNPQRSTUWXYZ'[(i // 3) % 20]}{'ABDEFGHJLNPQRSTUWXYZ'[area_digit[i] % 20]}"
        return code.lower() if i % 3 else code[:-3] + " " + code[-3:]

    person = rng.integers(0, people, rows)
    has_parts = rng.random(rows) < 0.5
    pools = {
        "email": _pool(people, email), "phone": _pool(people, phone), "full_name": _pool(people, full_name),
        "address_line": _pool(people, address), "postcode": _pool(people, postcode),
    }
    frame = {column: _take(pools[column], person, rng) for column in pools}
    frame["first_name"] = np.where(has_parts, first[person].astype(object), None)
    frame["last_name"] = np.where(has_parts, last[person].astype(object), None)
    frame["full_name"] = np.where(has_parts, None, frame["full_name"])
    frame["date_of_birth"] = _take(_pool(30_000, dob), person % 30_000, rng)
    frame["city"] = _sample(rng, np.array(CITIES, dtype=object), rows)
    frame["country"] = _sample(rng, np.array(COUNTRIES, dtype=object), rows)
    frame["loyalty_card"] = _sample(rng, _pool(people, lambda i: f"lc {i:010d}"), rows, present=0.4)
    frame["payment_token"] = _sample(rng, _pool(people, lambda i: f"tok_{i:012x}"), rows, present=0.2)
    frame["web_user_id"] = _sample(rng, _pool(people, lambda i: f"u{i:08x}"), rows, present=0.3)
    frame["cookie_id"] = _sample(rng, _pool(rows // 2, lambda i: f"ck-{i:012x}"), rows, present=0.6)
    frame["account_id"] = _sample(rng, _pool(people, lambda i: f"acc{i}"), rows, present=0.3)
    frame["order_number"] = _sample(rng, _pool(rows, lambda i: f"ORD-{i:09d}"), rows, present=0.3)
    frame["social_handle"] = _sample(rng, _pool(people // 4, lambda i: f"@user_{i}"), rows, present=0.1)
    seconds = pd.Timestamp("2023-01-01").value // 10**9 + rng.integers(0, 60_000_000, rows)
    stamps = pd.to_datetime(seconds, unit="s")
    frame["observed_at"] = np.where(rng.random(rows) < 0.8, stamps.strftime("%Y-%m-%dT%H:%M:%SZ"), stamps.strftime("%d/%m/%Y %H:%M"))
    return pd.DataFrame({column: pd.Series(frame[column], dtype="str") for column in INPUT_COLUMNS})


def _take(pool: np.ndarray, index: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    values = pool[index].copy()
    junk_rows = rng.random(len(index)) < 0.01
    values[junk_rows] = rng.choice(np.array(JUNK, dtype=object), junk_rows.sum())
    return values


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished worker processes."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _timed(raw: pd.DataFrame, workers: int | None) -> tuple[float, float]:
    """Wall-clock and CPU seconds; CPU time stays meaningful when other work shares the machine."""
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    standardize_frame(raw, workers=workers)
    return time.perf_counter() - started, _cpu_seconds() - cpu_started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--workers", type=int, help="worker processes (default: standardize_frame's choice)")
    parser.add_argument("--whole-only", action="store_true", help="time only the whole frame")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    raw = synthetic_raw(args.rows)
    build_seconds = time.perf_counter() - started
    standardize_frame(raw.head(1000))  # warm library caches (pycountry, nicknames, metadata)

    figures: dict[str, object] = {"rows": args.rows, "workers": args.workers, "build_seconds": round(build_seconds, 2), "attributes": {}}
    print(f"{'attribute':<16}{'distinct':>10}{'seconds':>10}{'cpu s':>10}{'rows/s':>14}")
    for column in ["whole frame"] if args.whole_only else [*INPUT_COLUMNS, "whole frame"]:
        frame = raw if column == "whole frame" else raw[[column]]
        seconds, cpu = _timed(frame, args.workers)
        distinct = "" if column == "whole frame" else int(raw[column].nunique())
        entry = {"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3), "rows_per_second": round(args.rows / seconds)}
        if distinct != "":
            figures["attributes"][column] = {"distinct": distinct, **entry}
        else:
            figures["whole_frame"] = entry
        print(f"{column:<16}{distinct:>10}{seconds:>10.2f}{cpu:>10.2f}{args.rows / seconds:>14,.0f}")
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
