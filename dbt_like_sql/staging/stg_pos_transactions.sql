-- In-store transactions, typed, one row per transaction, with the customer each belongs to.
-- Totals that are not plain decimal numbers become missing rather than failing the model.
-- key: transaction_id
-- freshness: occurred_at
SELECT
    p.source,
    p.source_record_id AS transaction_id,
    x.customer_id,
    p.observed_at AS occurred_at,
    nullif(trim(p.src_store_id), '') AS store_id,
    CASE WHEN trim(p.src_total) LIKE '%_%' AND translate(trim(p.src_total), '0123456789.', '') = ''
              AND trim(p.src_total) NOT LIKE '%.%.%'
         THEN CAST(trim(p.src_total) AS DECIMAL(14, 2)) END AS total,
    upper(nullif(trim(p.src_currency), '')) AS currency,
    p.loyalty_card,
    nullif(trim(p.src_line_items), '') AS line_items
FROM standardized.pos_transactions AS p
JOIN profiles.active_xref AS x
    ON x.source = p.source AND x.source_record_id = p.source_record_id
WHERE p.observed_at IS NOT NULL
