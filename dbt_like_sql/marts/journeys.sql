-- Cross-channel journeys: a customer's interactions with no silence longer than the configured
-- gap between them (journey_gap_hours). Channels are listed in order of first use; hops count
-- changes of channel from one interaction to the next; cumulative time is case handling time
-- plus web session time; a journey is resolved when none of its cases is still open.
-- The distinct channels, orders and cases are each gathered in a CTE of their own: DISTINCT
-- aggregates in the main GROUP BY cost twice as much (each becomes a separate aggregation).
-- Orders and cases are gathered unordered and then sorted (list_sort), about half the cost of
-- an ordered aggregate.
-- key: journey_id
-- freshness: ended_at
WITH totals AS (
    SELECT
        journey_id,
        customer_id,
        min(occurred_at) AS started_at,
        max(occurred_at) AS ended_at,
        CAST(sum(is_hop) AS BIGINT) AS hops,
        count(*) AS interactions,
        count(*) FILTER (WHERE is_contact) AS contacts,
        CAST(coalesce(sum(duration_seconds), 0) AS BIGINT) AS cumulative_seconds,
        NOT coalesce(bool_or(case_open), FALSE) AS resolved
    FROM intermediate.int_journeys
    GROUP BY journey_id, customer_id
),
channel_first_use AS (
    SELECT journey_id, channel, min(occurred_at) AS first_at
    FROM intermediate.int_journeys
    GROUP BY journey_id, channel
),
channel_lists AS (
    SELECT journey_id, array_agg(channel ORDER BY first_at, channel) AS channels, count(*) AS channel_count
    FROM channel_first_use
    GROUP BY journey_id
),
journey_orders AS (
    SELECT journey_id, list_sort(list(order_number)) AS order_numbers
    FROM (SELECT DISTINCT journey_id, order_number FROM intermediate.int_journeys WHERE order_number IS NOT NULL) AS o
    GROUP BY journey_id
),
journey_cases AS (
    SELECT journey_id, list_sort(list(case_id)) AS case_ids
    FROM (SELECT DISTINCT journey_id, case_id FROM intermediate.int_journeys WHERE case_id IS NOT NULL) AS k
    GROUP BY journey_id
)
SELECT
    t.journey_id,
    t.customer_id,
    t.started_at,
    t.ended_at,
    l.channels,
    l.channel_count,
    t.hops,
    t.interactions,
    t.contacts,
    t.cumulative_seconds,
    o.order_numbers,
    k.case_ids,
    t.resolved
FROM totals AS t
JOIN channel_lists AS l ON l.journey_id = t.journey_id
LEFT JOIN journey_orders AS o ON o.journey_id = t.journey_id
LEFT JOIN journey_cases AS k ON k.journey_id = t.journey_id
