"""The column-wise CSV path (Arrow) stages and quarantines exactly what the row reader does, and
hands every file it cannot read identically to the row reader."""

import ingest_paths
import pytest
from ingest_paths import assert_same

from cdp_pipelines.ingest import readers_csv
from cdp_pipelines.ingest.sources_config import SourceConfig

HEADER = "id,name,email,ts"
GOOD = "".join(f"{i},Person {i},p{i}@example.com,2024-03-01T10:00:00\n" for i in range(1, 6))


def source(**overrides) -> SourceConfig:
    fields = dict(name="shop", path="shop*.csv", format="csv", record_id="id", kind="event",
                  timestamp="ts", mapping={"full_name": "name", "email": "email"},
                  max_duplicate_id_ratio=0.5, max_unparseable_timestamp_ratio=0.5)
    return SourceConfig(**{**fields, **overrides})


def read_both(tmp_path, monkeypatch, files: dict[str, bytes]):
    return ingest_paths.read_both(tmp_path, monkeypatch, files, source(), readers_csv, readers_csv.read_csv_file)


CASES = {
    "clean": ((HEADER + "\n" + GOOD).encode(), True),
    "bom, crlf, blank lines before the header and between rows": (
        ("\ufeff\r\n\r\n" + HEADER + "\r\n" + GOOD.replace("\n", "\r\n") + "\r\n\r\n"
         + "9,Nine,n@x.com,2024-03-02T10:00:00\r\n").encode(), True),
    "quoted commas and line breaks": (
        (HEADER + '\n1,"Smith, John","a@x.com",2024-03-01\n2,"two\nlines",b@x.com,2024-03-01\n').encode(), True),
    "missing ids, padded ids, duplicates and bad timestamps": (
        (HEADER + "\n" + GOOD + ",No Id,x@x.com,2024-03-01\n \u3000,Blank Id,y@x.com,2024-03-01\n"
         " 7\x1f,Padded,p@x.com,2024-03-01\n3,Dup,d@x.com,2024-03-01\n8,Bad,b@x.com,2024-02-30\n"
         "10,NoTs,n@x.com,\n").encode(), True),
    "a row with a field too many": ((HEADER + "\n" + GOOD + "6,Six,s@x.com,2024-03-01,extra\n").encode(), False),
    "invalid utf-8": ((HEADER + "\n" + GOOD).encode() + b"6,Caf\xe9,c@x.com,2024-03-01\n", False),
    "quotes inside and after quoted values": (
        (HEADER + '\n1,"He said ""hi""",h@x.com,2024-03-01\n2,O"Neil,o@x.com,2024-03-01\n'
         '3,"Ann"e,"a,b"c"d,2024-03-01\n4,"",,2024-03-01\n').encode(), True),
    "lone carriage returns": ((HEADER + "\r" + GOOD.replace("\n", "\r") + '6,"two\rlines",x@x.com,2024-03-01\r').encode(),
                              False),
    "carriage returns after the header": ((HEADER + "\n" + GOOD.replace("\n", "\r") + "6,Six,s@x.com,2024-03-01\r\r\n").encode(),
                                          True),
    "a header over two lines": (('id,name,email,ts,"no\nte"\n' + GOOD.replace("\n", ",x\n")).encode(), False),
    "a nul byte": ((HEADER + "\n" + GOOD).encode() + b"6,N\x00L,n@x.com,2024-03-01\n", False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_column_wise_and_row_reader_agree(tmp_path, monkeypatch, case):
    content, column_wise = CASES[case]
    fast, slow, went_column_wise = read_both(tmp_path, monkeypatch, {"shop.csv": content})
    assert went_column_wise is column_wise
    assert_same(fast, slow)


def test_later_files_supersede_earlier_ones_the_same_way(tmp_path, monkeypatch):
    files = {"shop_1.csv": (HEADER + "\n" + GOOD).encode(),
             "shop_2.csv": (HEADER + "\n2,Updated,u@x.com,2024-04-01\n2,Again,a@x.com,2024-04-02\n").encode()}
    fast, slow, went_column_wise = read_both(tmp_path, monkeypatch, files)
    assert went_column_wise
    assert_same(fast, slow)
    assert fast.rows_superseded == 1
