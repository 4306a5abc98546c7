-- Public social posts and replies, typed, one row per post, with the customer each belongs to.
-- key: post_id
-- freshness: occurred_at
SELECT
    s.source,
    s.source_record_id AS post_id,
    x.customer_id,
    s.observed_at AS occurred_at,
    lower(nullif(trim(s.src_platform), '')) AS platform,
    s.social_handle,
    nullif(trim(s.src_text), '') AS post_text,
    nullif(trim(s.src_in_reply_to), '') AS in_reply_to
FROM standardized.social_posts AS s
JOIN profiles.active_xref AS x
    ON x.source = s.source AND x.source_record_id = s.source_record_id
WHERE s.observed_at IS NOT NULL
