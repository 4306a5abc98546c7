-- Everything a customer did or said, across all channels, in one time-ordered list: what an
-- agent scrolls through. Each line carries its position in the customer's history and the
-- journey it belongs to.
-- key: source, source_record_id
-- freshness: occurred_at
SELECT
    j.customer_id,
    j.sequence_number,
    j.occurred_at,
    j.channel,
    j.interaction_type,
    i.summary,
    j.order_number,
    j.case_id,
    j.duration_seconds,
    i.amount,
    i.currency,
    j.journey_id,
    j.source,
    j.source_record_id
FROM intermediate.int_journeys AS j
JOIN intermediate.int_interactions AS i
    ON i.source = j.source AND i.source_record_id = j.source_record_id
