-- Cross-channel journeys: a customer's interactions with no silence longer than the configured
-- gap between them (journey_gap_hours). Channels are listed in order of first use; hops count
-- changes of channel from one interaction to the next; cumulative time is case handling time
-- plus web session time; a journey is resolved when none of its cases is still open.
-- key: journey_id
-- freshness: ended_at
WITH channel_first_use AS (
    SELECT journey_id, channel, min(occurred_at) AS first_at
    FROM intermediate.int_journeys
    GROUP BY journey_id, channel
),
channel_lists AS (
    SELECT journey_id, array_agg(channel ORDER BY first_at, channel) AS channels
    FROM channel_first_use
    GROUP BY journey_id
)
SELECT
    j.journey_id,
    j.customer_id,
    min(j.occurred_at) AS started_at,
    max(j.occurred_at) AS ended_at,
    l.channels,
    count(DISTINCT j.channel) AS channel_count,
    CAST(sum(j.is_hop) AS BIGINT) AS hops,
    count(*) AS interactions,
    count(*) FILTER (WHERE j.is_contact) AS contacts,
    CAST(coalesce(sum(j.duration_seconds), 0) AS BIGINT) AS cumulative_seconds,
    array_agg(DISTINCT j.order_number ORDER BY j.order_number) FILTER (WHERE j.order_number IS NOT NULL) AS order_numbers,
    array_agg(DISTINCT j.case_id ORDER BY j.case_id) FILTER (WHERE j.case_id IS NOT NULL) AS case_ids,
    NOT coalesce(bool_or(j.case_open), FALSE) AS resolved
FROM intermediate.int_journeys AS j
JOIN channel_lists AS l ON l.journey_id = j.journey_id
GROUP BY j.journey_id, j.customer_id, l.channels
