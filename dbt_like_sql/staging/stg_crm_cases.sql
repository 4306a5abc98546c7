-- Customer-service cases, typed, one row per case, with the customer each belongs to.
-- A case counts as open while its status is open or pending (the CRM's own vocabulary).
-- key: case_id
-- freshness: opened_at
SELECT
    c.source,
    c.source_record_id AS case_id,
    x.customer_id,
    c.observed_at AS opened_at,
    CASE WHEN c.src_closed_at LIKE '____-__-__%'
         THEN CAST(replace(substr(c.src_closed_at, 1, 19), 'T', ' ') AS TIMESTAMP) END AS closed_at,
    lower(nullif(trim(c.src_channel), '')) AS channel,
    nullif(trim(c.src_reason), '') AS reason,
    nullif(trim(c.order_number), '') AS order_number,
    lower(nullif(trim(c.src_status), '')) AS status,
    coalesce(lower(trim(c.src_status)) IN ('open', 'pending'), FALSE) AS is_open,
    nullif(trim(c.src_agent), '') AS agent,
    CASE WHEN trim(c.src_handle_seconds) <> '' AND translate(trim(c.src_handle_seconds), '0123456789', '') = ''
         THEN CAST(trim(c.src_handle_seconds) AS INTEGER) END AS handle_seconds,
    nullif(trim(c.src_note), '') AS note,
    c.account_id
FROM standardized.crm_cases AS c
JOIN profiles.active_xref AS x
    ON x.source = c.source AND x.source_record_id = c.source_record_id
WHERE c.observed_at IS NOT NULL
