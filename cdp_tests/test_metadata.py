"""The metadata every asset shows: masked Markdown previews."""

import duckdb

from cdp_pipelines.metadata import PREVIEW_CELL_CHARACTERS, preview


def _table():
    con = duckdb.connect()
    con.execute("CREATE TABLE t (customer_id VARCHAR, email VARCHAR, note VARCHAR, amount DECIMAL(8, 2))")
    con.execute("INSERT INTO t VALUES ('c1', 'anna.smith@mail.co.uk', NULL, 12.5), "
                f"('c2', NULL, '{'x' * 100}', NULL)")
    return con


def test_a_preview_masks_personal_data_and_keeps_the_rest_readable(monkeypatch):
    monkeypatch.delenv("CDP_SHOW_PII", raising=False)
    text = preview(_table(), "t").value
    lines = text.splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["customer_id", "email", "note", "amount"]
    assert "a***@mail.co.uk" in text and "anna.smith" not in text
    assert "x" not in text  # the note column is personal data too, masked whole
    assert "12.50" in text and "c2" in text
    assert len(lines) == 4  # header, rule, two rows


def test_a_preview_shows_personal_data_when_allowed_and_cuts_long_values(monkeypatch):
    monkeypatch.setenv("CDP_SHOW_PII", "1")
    text = preview(_table(), "t", columns=["email", "note"]).value
    assert "anna.smith@mail.co.uk" in text
    assert "x" * PREVIEW_CELL_CHARACTERS in text and "x" * (PREVIEW_CELL_CHARACTERS + 1) not in text
    assert "customer_id" not in text


def test_an_empty_table_says_so():
    con = duckdb.connect()
    con.execute("CREATE TABLE t (a INTEGER)")
    assert preview(con, "t").value == "_(no rows)_"
