-- Each interaction with the journey it belongs to and its place in the customer's history
-- (sequence_number, from the same window): a customer's interactions, in time order, start a
-- new journey after a silence longer than the configured gap (journey_gap_hours).
-- key: source, source_record_id
-- freshness: occurred_at
WITH ordered AS (
    SELECT
        i.*,
        lag(i.occurred_at) OVER (PARTITION BY i.customer_id ORDER BY i.occurred_at, i.source, i.source_record_id) AS previous_at,
        lag(i.channel) OVER (PARTITION BY i.customer_id ORDER BY i.occurred_at, i.source, i.source_record_id) AS previous_channel,
        row_number() OVER (PARTITION BY i.customer_id ORDER BY i.occurred_at, i.source, i.source_record_id) AS sequence_number
    FROM intermediate.int_interactions AS i
),
flagged AS (
    SELECT
        *,
        CASE WHEN previous_at IS NULL
                  OR occurred_at - previous_at > {{ var('journey_gap_hours') }} * INTERVAL '1 hour'
             THEN 1 ELSE 0 END AS starts_journey
    FROM ordered
),
numbered AS (
    SELECT
        *,
        sum(starts_journey) OVER (PARTITION BY customer_id ORDER BY occurred_at, source, source_record_id
                                  ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS journey_number
    FROM flagged
)
SELECT
    customer_id || '-J' || CAST(journey_number AS VARCHAR) AS journey_id,
    customer_id, journey_number, CAST(sequence_number AS BIGINT) AS sequence_number, source, source_record_id,
    channel, interaction_type, occurred_at, order_number, case_id, duration_seconds, is_contact, case_open,
    CASE WHEN starts_journey = 0 AND channel <> previous_channel THEN 1 ELSE 0 END AS is_hop
FROM numbered
