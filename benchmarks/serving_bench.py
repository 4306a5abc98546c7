"""Serving benchmark: publish 1M customers to PostgreSQL, then hammer lookups from 16 clients.

    .venv/bin/python benchmarks/serving_bench.py --url postgresql://postgres@127.0.0.1:5432/postgres

Builds the warehouse tables in an in-memory DuckDB with range(), publishes them into a fresh
database (cdp_bench_<random>, dropped at the end unless --keep), then runs --clients clients,
each with its own connection (a ServingClient), doing lookups by random identifiers for
--seconds. Reports publish seconds and lookup p50/p95/p99 latency and throughput. --rate N paces
each client to N lookups/s (open loop, like real channel traffic); 0 means as fast as possible
(closed loop, saturation).

--processes P spreads the clients over P processes as threads: P = --clients (the default) is one
process per client; P = 1 is one application server whose 16 threads each hold a connection, the
way a channel system's connection pool works. Every client connects and warms up first; timing
starts for all of them at once, after the last one is ready.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import duckdb
import psycopg
from psycopg.conninfo import conninfo_to_dict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cdp_pipelines.bench import BenchmarkError, ServingDatabase  # noqa: E402
from cdp_pipelines.serving import ServingClient, publish  # noqa: E402

KEYWORD = {"email": "email", "phone": "phone", "loyalty_card": "card", "cookie_id": "cookie"}


def build_warehouse(duck: duckdb.DuckDBPyConnection, n: int) -> None:
    """~2.5 identifiers per customer: every one has an email, 70% a phone, 40% a card, 40% a cookie."""
    cid = "printf('C%08d', i)"
    duck.execute("CREATE SCHEMA marts; CREATE SCHEMA segments; CREATE SCHEMA serving")
    duck.execute(f"""CREATE TABLE marts.customer_360 AS SELECT {cid} AS customer_id,
        'First' || (i % 5000) AS first_name, 'Last' || (i % 20000) AS last_name,
        'cust' || i || '@mail.co.uk' AS email, DATE '1950-01-01' + (i % 20000)::INTEGER AS date_of_birth,
        printf('LS%d %dAA', i % 30, i % 9) AS postcode, (i % 1000) * 1.25 AS lifetime_value,
        (i % 37)::INTEGER AS orders_count, i % 10 = 0 AS is_vip,
        TIMESTAMP '2024-01-01' + to_seconds(i % 10000000) AS last_seen_at,
        ['web', 'store', 'app'][1:1 + (i % 3)::INTEGER] AS channels,
        CASE WHEN i % 3 = 0 THEN 'email' ELSE 'sms' END AS preferred_channel
        FROM range({n}) t(i)""")
    duck.execute(f"""CREATE TABLE marts.contact_context AS SELECT {cid} AS customer_id,
        TIMESTAMP '2024-06-01' + to_seconds(i % 1000000) AS last_contact_at,
        (i % 4)::INTEGER AS open_cases, 'note about customer ' || i AS notes,
        'offer_' || (i % 12) AS next_best_action, (i % 5)::INTEGER AS contacts_last_30d
        FROM range({n}) t(i)""")
    duck.execute(f"""CREATE TABLE marts.journeys AS SELECT 'J' || i AS journey_id, {cid} AS customer_id,
        'stage_' || (i % 6) AS stage, TIMESTAMP '2024-03-01' + to_seconds(i % 5000000) AS started_at
        FROM range({n}) t(i)""")
    duck.execute(f"""CREATE TABLE marts.customer_sentiment AS SELECT {cid} AS customer_id,
        ((i % 200) / 100.0 - 1)::DOUBLE AS score, ['negative','neutral','positive'][1 + (i % 3)::INTEGER] AS label
        FROM range({n}) t(i)""")
    duck.execute(f"""CREATE TABLE marts.escalations AS SELECT 'E' || i AS escalation_id, {cid} AS customer_id,
        'late delivery' AS reason, 'agent comment ' || i AS agent_comment
        FROM range({n}) t(i) WHERE i % 20 = 0""")
    duck.execute(f"""CREATE TABLE segments.membership AS SELECT s AS segment, {cid} AS customer_id
        FROM range({n}) t(i), (VALUES ('all_customers'), ('vip'), ('lapsed')) v(s)
        WHERE s = 'all_customers' OR (s = 'vip' AND i % 10 = 0) OR (s = 'lapsed' AND i % 3 = 1)""")
    duck.execute(f"""CREATE TABLE serving.identity_lookup AS
        SELECT 'email' AS identifier_type, 'cust' || i || '@mail.co.uk' AS identifier_value, {cid} AS customer_id
        FROM range({n}) t(i)
        UNION ALL SELECT 'phone', '+4478' || printf('%08d', i), {cid} FROM range({n}) t(i) WHERE i % 10 < 7
        UNION ALL SELECT 'loyalty_card', printf('LC%09d', i), {cid} FROM range({n}) t(i) WHERE i % 5 < 2
        UNION ALL SELECT 'cookie_id', 'CK_' || upper(md5(i::VARCHAR)), {cid} FROM range({n}) t(i) WHERE i % 5 >= 3""")
    # Cookies as standardization stores codes (upper-cased): a lookup normalises what it is given
    # the same way, so every sampled identifier is a hit.


def sample_identifiers(duck: duckdb.DuckDBPyConnection, k: int) -> list[tuple[str, str]]:
    rows = duck.execute(
        f"SELECT identifier_type, identifier_value FROM serving.identity_lookup USING SAMPLE {k} ROWS"
    ).fetchall()
    return [(KEYWORD[t], v) for t, v in rows]


WARMUP_LOOKUPS = 20
START_TIMEOUT_S = 600  # every client connected and warm by then, or the run fails


def client_loop(client, identifiers, seconds: float, rate: float, rng: random.Random, start) -> tuple:
    """One client: warm its connection, wait for the common start, then time every lookup end to
    end (normalisation, round trip, decoding), as a channel system would see it."""
    latencies, misses, errors = [], 0, 0
    interval = 1.0 / rate if rate > 0 else 0.0
    # A channel system keeps its connection open: warm it (statement prepared server-side,
    # generic plan chosen, catalog caches of the backend loaded) before timing.
    for _ in range(WARMUP_LOOKUPS):
        keyword, value = rng.choice(identifiers)
        client.lookup(**{keyword: value})
    start()
    deadline = time.perf_counter() + seconds
    next_at = time.perf_counter()
    while (now := time.perf_counter()) < deadline:
        if interval:
            if now < next_at:
                time.sleep(next_at - now)
            next_at += interval * rng.expovariate(1.0)
        keyword, value = rng.choice(identifiers)
        t0 = time.perf_counter()
        try:
            hits = client.lookup(**{keyword: value})
        except Exception:  # counted, reported, never silently ignored
            errors += 1
            continue
        latencies.append(time.perf_counter() - t0)
        misses += not hits
    return latencies, misses, errors


def client_process(url: str, identifiers, seconds: float, rate: float, seeds: list[int], ready, go, out) -> None:
    """len(seeds) clients in this process: one thread and one connection each."""
    warmed = threading.Barrier(len(seeds) + 1, timeout=START_TIMEOUT_S)  # a failed client breaks it

    def start() -> None:
        warmed.wait()  # every thread of this process is warm ...
        go.wait()      # ... and so is every other process

    results = [None] * len(seeds)

    def run(i: int) -> None:
        with ServingClient(url) as client:
            results[i] = client_loop(client, identifiers, seconds, rate, random.Random(seeds[i]), start)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(seeds))]
    for t in threads:
        t.start()
    warmed.wait()
    ready.put(True)
    for t in threads:
        t.join()
    out.put(results)


def run_clients(url: str, identifiers, clients: int, seconds: float, rate: float, processes: int | None = None) -> dict:
    processes = min(processes or clients, clients)
    ctx = mp.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    seeds = [list(range(clients))[p::processes] for p in range(processes)]
    procs = [ctx.Process(target=client_process, args=(url, identifiers, seconds, rate, s, ready, go, out))
             for s in seeds]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=START_TIMEOUT_S)
    go.set()
    results = [r for _ in procs for r in out.get()]
    for p in procs:
        p.join()
    lat = sorted(x for r in results for x in r[0])
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {
        "lookups": len(lat), "misses": sum(r[1] for r in results), "errors": sum(r[2] for r in results),
        "throughput_per_s": round(len(lat) / seconds),
        "p50_ms": round(q[49] * 1000, 2), "p95_ms": round(q[94] * 1000, 2), "p99_ms": round(q[98] * 1000, 2),
        "max_ms": round(lat[-1] * 1000, 2),
    }


# pgbench scripts (weight, SQL) drawing identifiers that build_warehouse stored, by the same
# formulas, already normalised: the server's side of a lookup, without the Python client.
PGBENCH_SCRIPTS = {
    "email": (40, "\\set i random(0, {last})\n"
                  "SELECT l::text FROM cdp.lookup_customers(ARRAY['email'], ARRAY['cust' || :i || '@mail.co.uk']) AS l;\n"),
    "phone": (28, "\\set i random(0, {tenths}) * 10 + random(0, 6)\n"
                  "SELECT l::text FROM cdp.lookup_customers(ARRAY['phone'], ARRAY['+4478' || lpad(:i::text, 8, '0')]) AS l;\n"),
    "card": (16, "\\set i random(0, {fifths}) * 5 + random(0, 1)\n"
                 "SELECT l::text FROM cdp.lookup_customers(ARRAY['loyalty_card'], ARRAY['LC' || lpad(:i::text, 9, '0')]) AS l;\n"),
    "cookie": (16, "\\set i random(0, {fifths}) * 5 + random(3, 4)\n"
                   "SELECT l::text FROM cdp.lookup_customers(ARRAY['cookie_id'], ARRAY['CK_' || upper(md5(:i::text))]) AS l;\n"),
}


def run_pgbench(url: str, customers: int, clients: int, seconds: float) -> dict:
    """The same lookups from pgbench (PostgreSQL's C load generator), closed loop, one prepared
    statement per identifier type: what the database answers when the clients cost almost no
    CPU, so the two cores are the server's. Latency per lookup from pgbench's transaction log."""
    pgbench = shutil.which("pgbench")
    if pgbench is None:
        raise SystemExit("--pgbench: pgbench not found on PATH (it ships with the PostgreSQL server)")
    sizes = {"last": customers - 1, "tenths": customers // 10 - 1, "fifths": customers // 5 - 1}
    with psycopg.connect(url) as conn:  # every script's identifiers are stored ones: hits, not misses
        for name, (_, script) in PGBENCH_SCRIPTS.items():
            query = script.splitlines()[1].replace(":i", "3" if name == "cookie" else "0")
            if len(conn.execute(query).fetchall()) != 1:
                raise SystemExit(f"--pgbench: the {name} script does not find its customer")
    info = conninfo_to_dict(url)
    with tempfile.TemporaryDirectory(prefix="cdp_pgbench_") as tmp:
        args = [pgbench, "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(int(seconds)),
                "--log", f"--log-prefix={tmp}/lookup",
                "-h", info.get("host", "127.0.0.1"), "-p", str(info.get("port", 5432)),
                "-U", info.get("user", "postgres")]
        for name, (weight, script) in PGBENCH_SCRIPTS.items():
            path = Path(tmp) / f"{name}.sql"
            path.write_text(script.format(**sizes))
            args.append(f"--file={path}@{weight}")
        done = subprocess.run([*args, info["dbname"]], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"pgbench failed: {done.stderr.strip() or done.stdout.strip()}")
        # Log lines: client_id transaction_no latency_us script_no epoch_s epoch_us
        lat = sorted(int(line.split()[2]) / 1e6 for log in Path(tmp).glob("lookup*")
                     for line in log.read_text().splitlines() if line.strip())
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {
        "lookups": len(lat), "throughput_per_s": round(len(lat) / seconds),
        "p50_ms": round(q[49] * 1000, 2), "p95_ms": round(q[94] * 1000, 2), "p99_ms": round(q[98] * 1000, 2),
        "max_ms": round(lat[-1] * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="server URL; a fresh database is created next to this one")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rate", type=float, nargs="*", default=[0, 50],
                        help="lookups/s per client for each run; 0 = closed loop")
    parser.add_argument("--processes", type=int, nargs="*", default=[0],
                        help="client processes for each load (clients spread over them as threads); "
                             "0 = one process per client; several values run each load once per value")
    parser.add_argument("--p99-target-ms", type=float, default=5.0,
                        help="report, per layout, the highest paced load whose p99 met this (a rate sweep: "
                             "e.g. --rate 20 50 100 200 --processes 1)")
    parser.add_argument("--pgbench", action="store_true",
                        help="also run the lookups from pgbench, closed loop (server latency without "
                             "the Python clients' CPU on the same cores)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args()

    name = f"cdp_bench_{uuid.uuid4().hex[:8]}"
    try:
        with ServingDatabase(args.url, name, remedy="pass --url", keep=args.keep) as database:
            measure(args, database.url)
    except BenchmarkError as error:
        sys.exit(f"error: {error}")


def measure(args: argparse.Namespace, url: str) -> None:
    """Publish a generated warehouse twice into `url`, then run the lookup loads."""
    duck = duckdb.connect()
    duck.execute("SET threads = 2; SET preserve_insertion_order = false")
    t0 = time.perf_counter()
    build_warehouse(duck, args.customers)
    print(f"built warehouse: {args.customers:,} customers in {time.perf_counter() - t0:.1f}s")
    for attempt in (1, 2):
        result = publish(url, duck)
        print(f"publish #{attempt}: version {result.version}, {sum(result.row_counts.values()):,} rows "
              f"in {result.seconds:.1f}s  {result.row_counts}", flush=True)
        print(f"  phases (s): {result.phase_seconds}", flush=True)
    identifiers = sample_identifiers(duck, 50_000)
    met: dict[str, int] = {}
    for rate in args.rate:
        for processes in args.processes:
            processes = min(processes or args.clients, args.clients)
            label = "closed loop" if rate == 0 else f"{rate:g}/s per client"
            layout = ("1 process each" if processes == args.clients
                      else f"threads in {processes} process{'es' * (processes > 1)}")
            stats = run_clients(url, identifiers, args.clients, args.seconds, rate, processes)
            print(f"lookups, {args.clients} clients ({layout}), {label}, {args.seconds:g}s: {stats}",
                  flush=True)
            if rate > 0 and stats["p99_ms"] <= args.p99_target_ms and not stats["errors"]:
                met[layout] = max(met.get(layout, 0), stats["throughput_per_s"])
    for layout, per_s in met.items():
        print(f"highest paced load with p99 <= {args.p99_target_ms:g} ms ({layout}): {per_s}/s")
    if args.pgbench:
        stats = run_pgbench(url, args.customers, args.clients, args.seconds)
        print(f"lookups, {args.clients} pgbench clients, closed loop, {args.seconds:g}s: {stats}", flush=True)


if __name__ == "__main__":
    main()
