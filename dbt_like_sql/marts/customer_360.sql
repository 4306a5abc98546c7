-- One row per active customer: everything in marts.customer_profile (golden attributes,
-- identifiers, orders and lifetime value, first and last seen, preferred channel, consent per
-- channel) plus current_segments, the names of the segments the customer is a member of now
-- (from segments.membership, consent already enforced there), sorted; an empty list when none.
-- Segment rules read marts.customer_profile, never this table, so segments can be listed here.
-- key: customer_id
-- freshness: last_seen
WITH memberships AS (
    SELECT customer_id, list(DISTINCT segment ORDER BY segment) AS current_segments
    FROM segments.membership
    GROUP BY customer_id
)
SELECT
    p.*,
    coalesce(m.current_segments, CAST([] AS VARCHAR[])) AS current_segments
FROM marts.customer_profile AS p
LEFT JOIN memberships AS m ON m.customer_id = CAST(p.customer_id AS VARCHAR)
