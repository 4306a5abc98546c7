-- Every interaction of every customer on one line shape, whatever the source. The channel says
-- where it happened (web, chat, phone, email, store, social, review); a case is a contact on
-- the channel it was raised on. Web session time is put on the first event of each session so
-- that sums over interactions count every session once.
-- key: source, source_record_id
-- freshness: occurred_at
WITH web AS (
    SELECT
        w.*,
        row_number() OVER (PARTITION BY w.session_id ORDER BY w.occurred_at, w.event_id) AS event_in_session,
        date_diff('second',
                  min(w.occurred_at) OVER (PARTITION BY w.session_id),
                  max(w.occurred_at) OVER (PARTITION BY w.session_id)) AS session_seconds
    FROM staging.stg_web_events AS w
)
SELECT
    source, event_id AS source_record_id, customer_id, 'web' AS channel,
    coalesce(event_type, 'web_event') AS interaction_type, occurred_at, order_number,
    CAST(NULL AS VARCHAR) AS case_id,
    CASE WHEN session_id IS NULL THEN 0 WHEN event_in_session = 1 THEN session_seconds ELSE 0 END AS duration_seconds,
    FALSE AS is_contact, CAST(NULL AS BOOLEAN) AS case_open,
    CAST(NULL AS DECIMAL(14, 2)) AS amount, CAST(NULL AS VARCHAR) AS currency,
    coalesce(event_type, 'web event') || coalesce(' ' || sku, '') || coalesce(' order ' || order_number, '') AS summary
FROM web
UNION ALL
SELECT
    source, case_id, customer_id, coalesce(channel, 'unknown'), 'case', opened_at, order_number,
    case_id, coalesce(handle_seconds, 0), TRUE, is_open,
    CAST(NULL AS DECIMAL(14, 2)), CAST(NULL AS VARCHAR),
    coalesce(reason, 'case') || ' (' || coalesce(status, 'unknown') || ')' || coalesce(' order ' || order_number, '')
FROM staging.stg_crm_cases
UNION ALL
SELECT
    source, transaction_id, customer_id, 'store', 'purchase', occurred_at, CAST(NULL AS VARCHAR),
    CAST(NULL AS VARCHAR), 0, FALSE, CAST(NULL AS BOOLEAN),
    total, currency,
    'purchase' || coalesce(' ' || CAST(total AS VARCHAR) || coalesce(' ' || currency, ''), '') || coalesce(' at store ' || store_id, '')
FROM staging.stg_pos_transactions
UNION ALL
SELECT
    source, review_id, customer_id, 'review', 'review', occurred_at, order_number,
    CAST(NULL AS VARCHAR), 0, FALSE, CAST(NULL AS BOOLEAN),
    CAST(NULL AS DECIMAL(14, 2)), CAST(NULL AS VARCHAR),
    coalesce(CAST(rating AS VARCHAR) || '-star ', '') || 'review' || coalesce(' on ' || platform, '') || coalesce(': ' || left(title, 80), '')
FROM staging.stg_reviews
UNION ALL
SELECT
    source, post_id, customer_id, 'social', CASE WHEN in_reply_to IS NULL THEN 'post' ELSE 'reply' END, occurred_at,
    CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), 0, FALSE, CAST(NULL AS BOOLEAN),
    CAST(NULL AS DECIMAL(14, 2)), CAST(NULL AS VARCHAR),
    coalesce(platform || ' ', '') || 'post: ' || coalesce(left(post_text, 80), '')
FROM staging.stg_social_posts
