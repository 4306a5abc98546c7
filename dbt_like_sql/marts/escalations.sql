-- Customers an agent or team lead should look at, one row per customer and rule that fired
-- (its most pressing occurrence). `flag` is true while a case behind it is still open. Rules,
-- with thresholds from config/context.yaml:
--   repeat_contacts   repeat_contacts_min+ contacts about one order (or one reason when no
--                     order is known) within repeat_contacts_window_days
--   long_unresolved   more than unresolved_minutes_max minutes of handling on one order (or
--                     reason) that still has an open case
--   negative_while_open  a negative review or social post written while one of the
--                     customer's cases was open
-- key: customer_id, rule
-- freshness: triggered_at
WITH as_of AS (
    SELECT coalesce(CAST({{ var('as_of') }} AS TIMESTAMP), max(occurred_at)) AS at
    FROM intermediate.int_interactions
),
cases AS (
    SELECT
        c.*,
        coalesce('order:' || c.order_number, 'reason:' || coalesce(c.reason, 'unknown')) AS topic,
        coalesce('order ' || c.order_number, coalesce(c.reason, 'an unknown reason')) AS topic_text
    FROM staging.stg_crm_cases AS c, as_of
    WHERE c.opened_at <= as_of.at
),
latest_open AS (
    SELECT customer_id, topic, case_id AS open_case_id
    FROM (
        SELECT c.*, row_number() OVER (PARTITION BY c.customer_id, c.topic ORDER BY c.opened_at DESC, c.case_id DESC) AS recency
        FROM cases AS c WHERE c.is_open
    ) AS ranked
    WHERE recency = 1
),
windowed AS (
    SELECT
        c.*,
        count(*) OVER (PARTITION BY c.customer_id, c.topic ORDER BY c.opened_at
                       RANGE BETWEEN {{ var('repeat_contacts_window_days') }} * INTERVAL '1 day' PRECEDING AND CURRENT ROW) AS contacts_in_window
    FROM cases AS c
),
topics AS (
    SELECT
        customer_id, topic, min(topic_text) AS topic_text, max(order_number) AS order_number,
        max(contacts_in_window) AS max_contacts_in_window,
        coalesce(sum(handle_seconds), 0) AS handle_seconds,
        count(*) AS contacts,
        max(opened_at) AS last_contact_at
    FROM windowed
    GROUP BY customer_id, topic
),
repeat_contacts AS (
    SELECT
        t.customer_id, 'repeat_contacts' AS rule, o.open_case_id IS NOT NULL AS flag,
        CAST(t.max_contacts_in_window AS VARCHAR) || ' contacts in ' || CAST({{ var('repeat_contacts_window_days') }} AS VARCHAR)
            || ' days about ' || t.topic_text
            || CASE WHEN o.open_case_id IS NOT NULL THEN ' (case ' || o.open_case_id || ' still open)'
                    ELSE ' (all cases resolved)' END AS reason,
        t.order_number, o.open_case_id AS case_id, t.last_contact_at AS triggered_at
    FROM topics AS t
    LEFT JOIN latest_open AS o ON o.customer_id = t.customer_id AND o.topic = t.topic
    WHERE t.max_contacts_in_window >= {{ var('repeat_contacts_min') }}
),
long_unresolved AS (
    SELECT
        t.customer_id, 'long_unresolved' AS rule, TRUE AS flag,
        CAST(CAST(round(t.handle_seconds / 60.0, 0) AS INTEGER) AS VARCHAR) || ' minutes of handling across '
            || CAST(t.contacts AS VARCHAR) || ' contacts about ' || t.topic_text
            || ' (case ' || o.open_case_id || ' still open)' AS reason,
        t.order_number, o.open_case_id AS case_id, t.last_contact_at AS triggered_at
    FROM topics AS t
    JOIN latest_open AS o ON o.customer_id = t.customer_id AND o.topic = t.topic
    WHERE t.handle_seconds > {{ var('unresolved_minutes_max') }} * 60
),
negative_while_open AS (
    SELECT
        s.customer_id, 'negative_while_open' AS rule, c.is_open AS flag,
        CASE WHEN s.channel = 'review' THEN coalesce(CAST(s.rating AS VARCHAR) || '-star ', 'negative ') || 'review'
             ELSE 'negative social post' END
            || coalesce(' on ' || s.platform, '') || ' on ' || CAST(CAST(s.occurred_at AS DATE) AS VARCHAR)
            || ' while case ' || c.case_id || ' about ' || c.topic_text
            || CASE WHEN c.is_open THEN ' is still open' ELSE ' was open' END AS reason,
        c.order_number, c.case_id, s.occurred_at AS triggered_at
    FROM intermediate.int_sentiment_scores AS s
    CROSS JOIN as_of
    JOIN cases AS c
        ON c.customer_id = s.customer_id
       AND c.opened_at <= s.occurred_at
       AND (c.is_open OR c.closed_at > s.occurred_at)
    WHERE s.is_negative AND s.occurred_at <= as_of.at
),
fired AS (
    SELECT * FROM repeat_contacts
    UNION ALL SELECT * FROM long_unresolved
    UNION ALL SELECT * FROM negative_while_open
)
SELECT customer_id, rule, flag, reason, order_number, case_id, triggered_at
FROM (
    SELECT f.*, row_number() OVER (PARTITION BY f.customer_id, f.rule
                                   ORDER BY f.flag DESC, f.triggered_at DESC, f.case_id DESC) AS priority
    FROM fired AS f
) AS ranked
WHERE priority = 1
