-- Product reviews, typed, one row per review, with the customer each belongs to.
-- Ratings outside 1..5 become missing.
-- key: review_id
-- freshness: occurred_at
SELECT
    r.source,
    r.source_record_id AS review_id,
    x.customer_id,
    r.observed_at AS occurred_at,
    lower(nullif(trim(r.src_platform), '')) AS platform,
    nullif(trim(r.src_sku), '') AS sku,
    CASE WHEN trim(r.src_rating) IN ('1', '2', '3', '4', '5') THEN CAST(trim(r.src_rating) AS INTEGER) END AS rating,
    nullif(trim(r.src_title), '') AS title,
    nullif(trim(r.src_body), '') AS body,
    nullif(trim(r.order_number), '') AS order_number
FROM standardized.reviews AS r
JOIN profiles.active_xref AS x
    ON x.source = r.source AND x.source_record_id = r.source_record_id
WHERE r.observed_at IS NOT NULL
