"""Read the same files through a format's column-wise path and its row reader, for the tests
that require both to stage and quarantine exactly the same rows."""

import functools

from cdp_pipelines.ingest import readers
from cdp_pipelines.ingest.sources_config import SourceConfig


def read_both(tmp_path, monkeypatch, files: dict[str, bytes], source: SourceConfig, reader_module, read_file):
    """(column-wise result, row-reader result, whether every file went column-wise)."""
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    taken = []
    real = reader_module._read_column_wise

    def spy(*args):
        taken.append(real(*args))
        return taken[-1]

    monkeypatch.setattr(reader_module, "_read_column_wise", spy)
    fast = readers.read_source(source, tmp_path)
    monkeypatch.setitem(readers._FORMAT_READERS, source.format, functools.partial(read_file, column_wise=False))
    slow = readers.read_source(source, tmp_path)
    return fast, slow, bool(taken) and all(taken)


def assert_same(fast, slow):
    assert fast.rows_read == slow.rows_read == fast.table.num_rows + fast.quarantine.num_rows
    assert fast.table.schema == slow.table.schema
    assert fast.table.to_pylist() == slow.table.to_pylist()
    assert fast.quarantine.to_pylist() == slow.quarantine.to_pylist()
    assert fast.rows_per_file == slow.rows_per_file and fast.rows_superseded == slow.rows_superseded
    assert fast.extra_columns == slow.extra_columns
