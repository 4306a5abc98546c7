"""VADER sentiment of review and social-post texts, scored once per distinct text.

VADER runs in Python (its lexicon ships inside the vaderSentiment package, no download), so it
is the one context table not written in SQL: `intermediate.int_text_sentiment(source,
source_record_id, compound, text_md5)`, which the SQL models join to. The hash of the text lets
an incremental run score only the texts it has not scored before.
"""

from __future__ import annotations

import pandas as pd
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

TABLE = "intermediate.int_text_sentiment"

# The text of each record: a review's title and body, a post's text.
TEXTS_SQL = """
SELECT source, source_record_id,
       nullif(trim(concat_ws('. ', nullif(trim(src_title), ''), nullif(trim(src_body), ''))), '') AS text
FROM standardized.reviews
UNION ALL
SELECT source, source_record_id, nullif(trim(src_text), '') AS text
FROM standardized.social_posts
"""


def score_texts(texts: pd.Series) -> pd.Series:
    """Compound score (-1..1) per text, each distinct text scored once."""
    analyzer = SentimentIntensityAnalyzer()
    distinct = texts.dropna().unique()
    scores = {text: analyzer.polarity_scores(text)["compound"] for text in distinct}
    return texts.map(scores).astype("Float64")


def build_text_sentiment(con, incremental: bool = False) -> int:
    """(Re)create the sentiment table from the standardized texts; returns rows scored.

    Incrementally, only records whose text is not yet scored (by an MD5 of the text) are scored;
    rows of records whose text changed or went away are removed."""
    con.execute("CREATE SCHEMA IF NOT EXISTS intermediate")
    keep_scored = incremental and _has_text_hash(con)
    texts = f"SELECT source, source_record_id, text, md5(text) AS text_md5 FROM ({TEXTS_SQL}) WHERE text IS NOT NULL"
    if keep_scored:
        # Every current text hashed once: the texts to score and the rows to remove both read it.
        con.execute(f"CREATE OR REPLACE TEMP TABLE _current_texts AS {texts}")
        texts = (f"SELECT * FROM _current_texts AS t ANTI JOIN {TABLE} AS s "
                 "USING (source, source_record_id, text_md5)")
    try:
        records = con.execute(texts).df()
        records["compound"] = score_texts(records.pop("text"))
        scored = records.dropna(subset=["compound"])[["source", "source_record_id", "text_md5", "compound"]]
        select = """SELECT CAST(source AS VARCHAR) AS source, CAST(source_record_id AS VARCHAR) AS source_record_id,
                           CAST(compound AS DOUBLE) AS compound, CAST(text_md5 AS VARCHAR) AS text_md5
                    FROM scored_texts"""
        con.register("scored_texts", scored)
        try:
            if keep_scored:
                con.execute(f"""DELETE FROM {TABLE} AS s WHERE NOT EXISTS (
                                    SELECT 1 FROM _current_texts AS t WHERE t.source = s.source
                                    AND t.source_record_id = s.source_record_id AND t.text_md5 = s.text_md5)""")
                con.execute(f"INSERT INTO {TABLE} BY NAME {select}")
            else:
                con.execute(f"CREATE OR REPLACE TABLE {TABLE} AS {select}")
        finally:
            con.unregister("scored_texts")
    finally:
        con.execute("DROP TABLE IF EXISTS _current_texts")
    return len(scored)


def _has_text_hash(con) -> bool:
    schema, name = TABLE.split(".")
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
        "AND column_name = 'text_md5'", [schema, name]).fetchall()[0][0])
