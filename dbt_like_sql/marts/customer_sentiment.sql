-- How each customer who wrote a review or a social post feels: last and average star rating,
-- the average and latest VADER compound score of their texts, and negative mentions over the
-- negative_mentions_days before the as-of moment (default: the latest interaction).
-- key: customer_id
-- freshness: last_mention_at
WITH as_of AS (
    SELECT coalesce(CAST({{ var('as_of') }} AS TIMESTAMP), max(occurred_at)) AS at
    FROM intermediate.int_interactions
),
scores AS (
    SELECT s.*
    FROM intermediate.int_sentiment_scores AS s, as_of
    WHERE s.occurred_at <= as_of.at
),
last_rating AS (
    SELECT customer_id, rating, occurred_at
    FROM (
        SELECT s.*, row_number() OVER (PARTITION BY s.customer_id ORDER BY s.occurred_at DESC, s.source_record_id DESC) AS recency
        FROM scores AS s WHERE s.rating IS NOT NULL
    ) AS ranked
    WHERE recency = 1
),
last_text AS (
    SELECT customer_id, compound, occurred_at
    FROM (
        SELECT s.*, row_number() OVER (PARTITION BY s.customer_id ORDER BY s.occurred_at DESC, s.source_record_id DESC) AS recency
        FROM scores AS s WHERE s.compound IS NOT NULL
    ) AS ranked
    WHERE recency = 1
)
SELECT
    s.customer_id,
    lr.rating AS last_rating,
    lr.occurred_at AS last_rating_at,
    round(avg(s.rating), 2) AS average_rating,
    count(s.rating) AS ratings,
    round(avg(s.compound), 4) AS average_compound,
    lt.compound AS last_compound,
    count(s.compound) AS texts_scored,
    count(*) FILTER (WHERE s.is_negative
                       AND s.occurred_at > as_of.at - {{ var('negative_mentions_days') }} * INTERVAL '1 day') AS negative_mentions_30d,
    max(s.occurred_at) FILTER (WHERE s.is_negative) AS last_negative_at,
    max(s.occurred_at) AS last_mention_at
FROM scores AS s
CROSS JOIN as_of
LEFT JOIN last_rating AS lr ON lr.customer_id = s.customer_id
LEFT JOIN last_text AS lt ON lt.customer_id = s.customer_id
GROUP BY s.customer_id, lr.rating, lr.occurred_at, lt.compound
