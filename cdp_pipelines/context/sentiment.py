"""VADER sentiment of review and social-post texts, scored once per distinct text.

VADER runs in Python (its lexicon ships inside the vaderSentiment package, no download), so it
is the one context table not written in SQL: `intermediate.int_text_sentiment(source,
source_record_id, compound)`, which the SQL models join to.
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


def build_text_sentiment(con) -> int:
    """(Re)create the sentiment table from the standardized texts; returns rows scored."""
    records = con.execute(TEXTS_SQL).df()
    records["compound"] = score_texts(records.pop("text"))
    scored = records.dropna(subset=["compound"])[["source", "source_record_id", "compound"]]
    con.execute("CREATE SCHEMA IF NOT EXISTS intermediate")
    con.register("scored_texts", scored)
    try:
        con.execute(f"""CREATE OR REPLACE TABLE {TABLE} AS
                        SELECT CAST(source AS VARCHAR) AS source, CAST(source_record_id AS VARCHAR) AS source_record_id,
                               CAST(compound AS DOUBLE) AS compound
                        FROM scored_texts""")
    finally:
        con.unregister("scored_texts")
    return len(scored)
