-- Website events, typed, one row per event, with the customer each belongs to.
-- key: event_id
-- freshness: occurred_at
SELECT
    w.source,
    w.source_record_id AS event_id,
    x.customer_id,
    w.observed_at AS occurred_at,
    nullif(trim(w.src_session_id), '') AS session_id,
    w.cookie_id,
    w.web_user_id,
    lower(nullif(trim(w.src_event_type), '')) AS event_type,
    nullif(trim(w.src_url), '') AS url,
    nullif(trim(w.src_sku), '') AS sku,
    nullif(trim(w.order_number), '') AS order_number,
    lower(nullif(trim(w.src_consent_email), '')) AS consent_email
FROM standardized.web_events AS w
JOIN profiles.active_xref AS x
    ON x.source = w.source AND x.source_record_id = w.source_record_id
WHERE w.observed_at IS NOT NULL
