-- Every review and social post with its VADER compound score (from int_text_sentiment) and
-- whether it is negative: a review by its star rating, a post by its text score.
-- key: source, source_record_id
-- freshness: occurred_at
SELECT
    r.source, r.review_id AS source_record_id, r.customer_id, 'review' AS channel, r.platform,
    r.occurred_at, r.order_number, r.rating, t.compound,
    CASE WHEN r.rating IS NOT NULL THEN r.rating <= {{ var('negative_rating_max') }}
         ELSE t.compound <= {{ var('negative_compound') }} END AS is_negative
FROM staging.stg_reviews AS r
LEFT JOIN intermediate.int_text_sentiment AS t
    ON t.source = r.source AND t.source_record_id = r.review_id
UNION ALL
SELECT
    p.source, p.post_id, p.customer_id, 'social', p.platform,
    p.occurred_at, CAST(NULL AS VARCHAR), CAST(NULL AS INTEGER), t.compound,
    t.compound <= {{ var('negative_compound') }}
FROM staging.stg_social_posts AS p
LEFT JOIN intermediate.int_text_sentiment AS t
    ON t.source = p.source AND t.source_record_id = p.post_id
