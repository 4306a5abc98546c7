"""The warehouse connection's settings: text compression is a choice of file size against speed."""

from __future__ import annotations

import duckdb
import pytest

from cdp_pipelines import settings
from cdp_pipelines.resources import WarehouseResource, default_resources


def _text_compressions(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {row[0] for row in con.execute(
        "SELECT DISTINCT compression FROM pragma_storage_info('t') WHERE column_name = 'city' "
        "AND segment_type = 'VARCHAR'").fetchall()}


@pytest.mark.parametrize("compact_text", [False, True])
def test_text_is_stored_as_configured(tmp_path, compact_text):
    """Repetitive text is dictionary+FSST-compressed only when compact_text asks for it."""
    warehouse = WarehouseResource(path=str(tmp_path / f"w_{compact_text}.duckdb"), compact_text=compact_text)
    with warehouse.connect() as con:
        con.execute("CREATE TABLE t AS SELECT ['Leeds', 'York', 'Hull'][1 + (i % 3)::INTEGER] || ' city' AS city "
                    "FROM range(300000) r(i)")
        con.execute("CHECKPOINT")
        used = _text_compressions(con)
        setting = con.execute("SELECT current_setting('disabled_compression_methods')").fetchone()[0]
    assert ("DICT_FSST" in {u.upper() for u in used}) == compact_text, used
    assert ("dict_fsst" in setting.lower()) != compact_text


def test_compact_text_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(settings.ENV_WAREHOUSE_COMPACT_TEXT, raising=False)
    assert default_resources()["warehouse"].compact_text is False
    monkeypatch.setenv(settings.ENV_WAREHOUSE_COMPACT_TEXT, "1")
    assert default_resources()["warehouse"].compact_text is True


def test_every_connection_runs_with_the_settings_even_when_another_changed_them(tmp_path):
    """Settings are read and set only when they differ: a connection to an instance whose
    settings another connection changed still gets its own."""
    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"), memory_limit="1GB", threads=1)
    query = ("SELECT current_setting('threads'), current_setting('preserve_insertion_order'), "
             "current_setting('memory_limit')")
    with warehouse.connect() as first:
        configured = first.execute(query).fetchone()
        assert configured[:2] == (1, False)
        first.execute("SET threads = 3")
        first.execute("SET preserve_insertion_order = true")
        first.execute("SET memory_limit = '2GB'")
        with warehouse.connect() as second:  # the same DuckDB instance, settings changed
            assert second.execute(query).fetchone() == configured
