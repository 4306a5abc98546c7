-- What an agent sees first when a customer gets in touch, one row per active customer: the
-- last contact (time, channel, reason) and the channel the customer came from just before it
-- (hand-off); the open case (id, status, age in hours, owning agent) and the order it concerns;
-- case notes so far, most recent first, cut at notes_max_chars; and contacts and cumulative
-- handling minutes across all channels over the 7 and 30 days before the as-of moment
-- (config as_of; by default the latest interaction in the data, so results are reproducible).
-- key: customer_id
-- freshness: last_contact_at
WITH as_of AS (
    SELECT coalesce(CAST({{ var('as_of') }} AS TIMESTAMP), max(occurred_at)) AS at
    FROM intermediate.int_interactions
),
interactions AS (
    SELECT
        i.*,
        lag(i.channel) OVER (PARTITION BY i.customer_id ORDER BY i.occurred_at, i.source, i.source_record_id) AS previous_channel
    FROM intermediate.int_interactions AS i, as_of
    WHERE i.occurred_at <= as_of.at
),
last_contact AS (
    SELECT customer_id, occurred_at, channel, case_id, previous_channel
    FROM (
        SELECT i.*, row_number() OVER (PARTITION BY i.customer_id ORDER BY i.occurred_at DESC, i.source_record_id DESC) AS recency
        FROM interactions AS i
        WHERE i.is_contact
    ) AS ranked
    WHERE recency = 1
),
cases AS (
    SELECT c.*
    FROM staging.stg_crm_cases AS c, as_of
    WHERE c.opened_at <= as_of.at
),
open_case AS (
    SELECT customer_id, case_id, status, opened_at, agent, order_number
    FROM (
        SELECT c.*, row_number() OVER (PARTITION BY c.customer_id ORDER BY c.opened_at DESC, c.case_id DESC) AS recency
        FROM cases AS c
        WHERE c.is_open
    ) AS ranked
    WHERE recency = 1
),
case_summary AS (
    SELECT
        c.customer_id,
        count(*) FILTER (WHERE c.is_open) AS open_cases,
        left(string_agg(c.note, ' | ' ORDER BY c.opened_at DESC, c.case_id DESC) FILTER (WHERE c.note IS NOT NULL),
             {{ var('notes_max_chars') }}) AS notes,
        count(*) FILTER (WHERE c.opened_at > as_of.at - INTERVAL '7 days') AS contacts_7d,
        count(*) FILTER (WHERE c.opened_at > as_of.at - INTERVAL '30 days') AS contacts_30d,
        round(coalesce(sum(c.handle_seconds) FILTER (WHERE c.opened_at > as_of.at - INTERVAL '7 days'), 0) / 60.0, 1) AS handling_minutes_7d,
        round(coalesce(sum(c.handle_seconds) FILTER (WHERE c.opened_at > as_of.at - INTERVAL '30 days'), 0) / 60.0, 1) AS handling_minutes_30d
    FROM cases AS c, as_of
    GROUP BY c.customer_id
)
SELECT
    c.customer_id,
    lc.occurred_at AS last_contact_at,
    lc.channel AS last_contact_channel,
    last_case.reason AS last_contact_reason,
    lc.case_id AS last_contact_case_id,
    lc.previous_channel AS handoff_from_channel,
    oc.case_id AS open_case_id,
    oc.status AS open_case_status,
    round(date_diff('second', oc.opened_at, as_of.at) / 3600.0, 1) AS open_case_age_hours,
    oc.agent AS open_case_owner,
    coalesce(oc.order_number, last_case.order_number) AS order_number,
    coalesce(cs.open_cases, 0) AS open_cases,
    cs.notes,
    coalesce(cs.contacts_7d, 0) AS contacts_7d,
    coalesce(cs.contacts_30d, 0) AS contacts_30d,
    coalesce(cs.handling_minutes_7d, 0) AS handling_minutes_7d,
    coalesce(cs.handling_minutes_30d, 0) AS handling_minutes_30d,
    as_of.at AS as_of
FROM marts.customer_profile AS c
CROSS JOIN as_of
LEFT JOIN last_contact AS lc ON lc.customer_id = c.customer_id
LEFT JOIN staging.stg_crm_cases AS last_case ON last_case.case_id = lc.case_id
LEFT JOIN open_case AS oc ON oc.customer_id = c.customer_id
LEFT JOIN case_summary AS cs ON cs.customer_id = c.customer_id
