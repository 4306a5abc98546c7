"""standardize_frame: shape, per-row results, junk/invalid counts and null handling."""

import pandas as pd
import pyarrow as pa
import pytest

from cdp_pipelines.standardize.frame import OUTPUT_COLUMNS, standardize_frame


@pytest.fixture(scope="module")
def outcome():
    raw = pd.DataFrame(
        {
            "first_name": ["Bob", None, "N/A", "Liz", "Bob"],
            "last_name": ["SMITH", None, "Jones", "O'Neil", "Smith"],
            "full_name": [None, "Dr Jane Ann Doe", None, "unknown", None],
            "email": ["Bob.Smith+x@googlemail.com", "test@test.com", "bad@", None, "bobsmith@gmail.com"],
            "phone": ["07700 900123", "00000000000", "call me", "+1 212 555 0100", "+44 7700 900123"],
            "country": ["UK", None, "Narnia", "USA", "England"],
            "postcode": ["sw1a1aa", "sw1a1aa", "zz", "12345-6789", "XX1 1XX"],
            "date_of_birth": ["12/03/1985", "1985-02-30", "n/a", None, "1985-03-12"],
            "cookie_id": [" ck-1 ", "n/a", None, "ck 2", "CK-1"],
            "social_handle": ["@Foo", "https://x.com/Bar/", "??", "a b", None],
            "observed_at": ["2024-03-01T10:00:00Z", "01/03/2024 10:05", "soon", None, "2024-03-01T12:00:00+02:00"],
        },
        index=[10, 11, 12, 13, 14],
    )
    return standardize_frame(raw)


def test_every_canonical_column_on_the_raw_index(outcome):
    assert list(outcome.frame.columns) == list(OUTPUT_COLUMNS)
    assert list(outcome.frame.index) == [10, 11, 12, 13, 14]
    assert outcome.frame["date_of_birth"].dtype == pd.ArrowDtype(pa.date32())
    assert str(outcome.frame["observed_at"].dtype) == "datetime64[us]"
    for absent in ("address_line", "city", "loyalty_card", "account_id", "order_number", "web_user_id"):
        assert outcome.frame[absent].isna().all()


def test_rows_are_normalised(outcome):
    frame = outcome.frame
    assert frame.loc[10, ["first_name", "last_name", "full_name", "given_name"]].tolist() == ["bob", "smith", "bob smith", "robert"]
    assert frame.loc[11, ["first_name", "last_name", "full_name", "given_name"]].tolist() == ["jane", "doe", "jane ann doe", "jane"]
    assert frame.loc[12, "first_name"] is None or pd.isna(frame.loc[12, "first_name"])
    assert frame.loc[12, "full_name"] == "jones"
    assert frame.loc[13, "last_name"] == "oneil"
    assert frame.loc[10, "email"] == frame.loc[14, "email"] == "bobsmith@gmail.com"
    assert frame.loc[10, "phone"] == frame.loc[14, "phone"] == "+447700900123"
    assert frame.loc[10, "phone_kind"] == "mobile"
    assert frame.loc[13, ["phone", "phone_kind"]].tolist() == ["+12125550100", "other"]
    assert frame["country"].tolist()[:2] == ["GB", None] or pd.isna(frame.loc[11, "country"])
    assert frame.loc[11, "postcode"] == "SW1A 1AA"  # no country: default region rules fit
    assert frame.loc[13, "postcode"] == "12345"
    assert str(frame.loc[10, "date_of_birth"]) == "1985-03-12"
    assert frame.loc[10, "cookie_id"] == frame.loc[14, "cookie_id"] == "CK-1"
    assert frame.loc[13, "cookie_id"] == "CK2"
    assert frame["social_handle"].tolist()[:2] == ["foo", "bar"]
    assert frame.loc[14, "observed_at"] == pd.Timestamp("2024-03-01 10:00:00")
    assert frame.loc[11, "observed_at"] == pd.Timestamp("2024-03-01 10:05:00")


def test_junk_and_invalid_counts(outcome):
    assert outcome.junk_counts["phone"] == 1
    assert outcome.invalid_counts["phone"] == 1
    assert outcome.junk_counts["email"] == 1
    assert outcome.invalid_counts["email"] == 1
    assert outcome.junk_counts["first_name"] == 1
    assert outcome.junk_counts["full_name"] == 1
    assert outcome.invalid_counts["country"] == 1
    assert outcome.invalid_counts["postcode"] == 1  # "zz" has no known country, so it is kept as written
    assert (outcome.junk_counts["date_of_birth"], outcome.invalid_counts["date_of_birth"]) == (1, 1)
    assert outcome.junk_counts["cookie_id"] == 1
    assert (outcome.junk_counts["social_handle"], outcome.invalid_counts["social_handle"]) == (1, 1)
    assert outcome.invalid_counts["observed_at"] == 1
    assert "address_line" not in outcome.junk_counts


def test_repeated_values_are_counted_per_row():
    raw = pd.DataFrame({"email": ["test@test.com"] * 1000 + ["a@b.co"] * 5})
    outcome = standardize_frame(raw)
    assert outcome.junk_counts == {"email": 1000}
    assert outcome.frame["email"].notna().sum() == 5


def test_empty_and_all_null_frames():
    empty = standardize_frame(pd.DataFrame({"email": pd.Series([], dtype="str")}))
    assert list(empty.frame.columns) == list(OUTPUT_COLUMNS) and len(empty.frame) == 0
    nulls = standardize_frame(pd.DataFrame({"phone": [None, None, "  "], "first_name": [None, "", None]}))
    assert nulls.frame.isna().all().all()
    assert nulls.junk_counts == {"phone": 0, "first_name": 0}
    assert nulls.invalid_counts == {"phone": 0, "first_name": 0}


def test_phone_uses_row_country_as_region():
    raw = pd.DataFrame({"phone": ["(212) 555-0100", "07911 123456"], "country": ["US", None]})
    assert standardize_frame(raw).frame["phone"].tolist() == ["+12125550100", "+447911123456"]


def test_benchmark_frame_builds_and_standardizes():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from standardize_throughput import synthetic_raw

    raw = synthetic_raw(2000)
    outcome = standardize_frame(raw)
    assert len(outcome.frame) == 2000
    assert outcome.frame["email"].notna().mean() > 0.9
    assert outcome.frame["phone"].notna().mean() > 0.7


def test_worker_processes_give_the_same_result():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from standardize_throughput import synthetic_raw

    import cdp_pipelines.standardize.frame as frame_module

    raw = synthetic_raw(3000)
    in_process = standardize_frame(raw, workers=1)
    original = frame_module._PARALLEL_MIN_UNIQUES
    frame_module._PARALLEL_MIN_UNIQUES = 10
    try:
        parallel = standardize_frame(raw, workers=2)
    finally:
        frame_module._PARALLEL_MIN_UNIQUES = original
    pd.testing.assert_frame_equal(in_process.frame, parallel.frame)
    assert in_process.junk_counts == parallel.junk_counts
    assert in_process.invalid_counts == parallel.invalid_counts


def test_vectorised_identifiers_match_the_per_value_classifier():
    import pandas as pd

    from cdp_pipelines.standardize.config import default_config
    from cdp_pipelines.standardize.frame import _classify_identifier, _map_identifier

    values = ["lc 0012 34", " LC001234 ", "N/A", "unknown", "----", "0000000000", "xxxx", "  ", "", None,
              "a", "ab-12", "Ω123", "__", "tok_9f", "1234567", "Null", "none", "AAAAAAA", "W 12 3",
              "lc\u00a0001\u2003x", "ab\x1c12\x0b", "tok\u3000 9f", "n\u00a0/\u00a0a"]
    config = default_config()
    for attribute in ("loyalty_card", "payment_token", "web_user_id", "cookie_id", "account_id", "order_number"):
        mapped = _map_identifier(pd.Series(values, dtype="object"), attribute, config)
        expected = [None if v is None else _classify_identifier(v, attribute, config)[0] for v in values]
        per_row = mapped.text(pd.RangeIndex(len(values)))
        assert [None if pd.isna(v) else v for v in per_row] == expected, attribute
        junk = sum(1 for v in values if v is not None and _classify_identifier(v, attribute, config)[1].value == "junk")
        assert mapped.junk == junk > 0, attribute


def test_worker_pool_is_kept_between_frames_and_replaced_when_a_worker_dies():
    import os
    import signal
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from standardize_throughput import synthetic_raw

    import cdp_pipelines.standardize.frame as frame_module

    raw = synthetic_raw(1500)
    expected = standardize_frame(raw, workers=1).frame
    original = frame_module._PARALLEL_MIN_UNIQUES
    frame_module._PARALLEL_MIN_UNIQUES = 10
    try:
        standardize_frame(raw, workers=2)
        pool = frame_module._POOLS[2]
        standardize_frame(raw, workers=2)
        assert frame_module._POOLS[2] is pool  # interpreters are started once per process
        os.kill(next(iter(pool._processes)), signal.SIGKILL)
        again = standardize_frame(raw, workers=2)  # a dead worker costs a new pool, not the run
        assert frame_module._POOLS[2] is not pool
    finally:
        frame_module._PARALLEL_MIN_UNIQUES = original
    pd.testing.assert_frame_equal(expected, again.frame)


def test_workers_are_started_ahead_only_for_a_frame_large_enough_to_use_them():
    import os
    import time

    import cdp_pipelines.standardize.frame as frame_module

    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: frames are standardized in this process")
    for workers, pool in list(frame_module._POOLS.items()):
        frame_module._discard_pool(workers, pool)
    frame_module.start_workers_for(frame_module.PARALLEL_MIN_ROWS - 1)
    assert frame_module._POOLS == {}
    frame_module.start_workers_for(frame_module.PARALLEL_MIN_ROWS)
    pool = frame_module._POOLS[2]
    deadline = time.monotonic() + 60
    while len(pool._processes) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(pool._processes) == 2 and all(p.is_alive() for p in pool._processes.values())
    raw = pd.DataFrame({"email": ["Ann@Example.com"] * frame_module.PARALLEL_MIN_ROWS})
    standardize_frame(raw)  # the frame is standardized by the pool already started
    assert frame_module._POOLS[2] is pool


def _deaf_to_sigterm(pid_file: str, seconds: float) -> None:
    """Run in a pool worker: ignore SIGTERM, say which worker this is, then stay busy."""
    import os
    import signal
    import time
    from pathlib import Path

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(seconds)


def test_a_dead_worker_does_not_hang_the_run_when_the_other_ignores_sigterm(tmp_path):
    """The executor stops a broken pool's workers with SIGTERM only; a worker that does not die
    of it (ignored, or stuck on the queue lock the dead worker held) would keep the shutdown
    waiting. The broken pool's workers are killed instead, and the frame is standardized."""
    import os
    import signal
    import sys
    import threading
    import time
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from standardize_throughput import synthetic_raw

    import cdp_pipelines.standardize.frame as frame_module

    raw = synthetic_raw(1500)
    expected = standardize_frame(raw, workers=1).frame
    original = frame_module._PARALLEL_MIN_UNIQUES
    frame_module._PARALLEL_MIN_UNIQUES = 10
    deaf = None
    try:
        standardize_frame(raw, workers=2)  # workers start on demand: this starts both
        pool = frame_module._POOLS[2]
        assert len(pool._processes) == 2
        pid_file = tmp_path / "deaf.pid"
        pool.submit(_deaf_to_sigterm, str(pid_file), 90)
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the pool never ran the task"
            time.sleep(0.05)
        deaf = int(pid_file.read_text())
        os.kill(next(pid for pid in pool._processes if pid != deaf), signal.SIGKILL)

        outcome: list = []
        worker = threading.Thread(target=lambda: outcome.append(standardize_frame(raw, workers=2)), daemon=True)
        worker.start()
        worker.join(timeout=45)
        assert not worker.is_alive(), "standardizing hung on the broken pool's shutdown"
        assert frame_module._POOLS[2] is not pool
        with pytest.raises(ProcessLookupError):
            os.kill(deaf, 0)
    finally:
        frame_module._PARALLEL_MIN_UNIQUES = original
        if deaf is not None:  # when the test fails, free the hung shutdown so the session can end
            try:
                os.kill(deaf, signal.SIGKILL)
            except ProcessLookupError:
                pass
    pd.testing.assert_frame_equal(expected, outcome[0].frame)
