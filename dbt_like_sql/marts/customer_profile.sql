-- One row per active customer (exactly the customers of profiles.active_xref): golden
-- attributes, every known identifier as a list, orders and lifetime value (web checkouts and
-- store transactions; web checkouts carry no amount, so the value is the store totals), first
-- and last seen, the channel used most, and consent per channel.
-- This is the base of marts.customer_360 without segment membership: segment rules are
-- evaluated over it (alias customer_360), and marts.customer_360 adds the segments they produce,
-- so the graph has no cycle.
-- key: customer_id
-- freshness: last_seen
WITH customers AS (
    SELECT DISTINCT customer_id FROM profiles.active_xref
),
identifiers AS (
    -- customer_identifiers holds each (customer, type, value) once: no DISTINCT needed. Each list
    -- is gathered unordered and then sorted (list_sort), which costs about half an ordered
    -- aggregate (array_agg(... ORDER BY ...)) and gives the same list
    SELECT
        customer_id,
        list_sort(list(identifier_value) FILTER (WHERE identifier_type = 'email')) AS emails,
        list_sort(list(identifier_value) FILTER (WHERE identifier_type = 'phone')) AS phones,
        list_sort(list(identifier_value) FILTER (WHERE identifier_type = 'loyalty_card')) AS loyalty_cards,
        list_sort(list(identifier_value) FILTER (WHERE identifier_type = 'account_id')) AS account_ids,
        list_sort(list(identifier_value) FILTER (WHERE identifier_type = 'web_user_id')) AS web_user_ids,
        list_sort(list(identifier_value) FILTER (WHERE identifier_type = 'cookie_id')) AS cookie_ids,
        list_sort(list(identifier_value) FILTER (WHERE identifier_type = 'social_handle')) AS social_handles
    FROM profiles.customer_identifiers
    GROUP BY customer_id
),
orders AS (
    SELECT
        customer_id,
        count(DISTINCT order_key) AS order_count,
        count(DISTINCT order_key) FILTER (WHERE channel = 'web') AS web_orders,
        count(DISTINCT order_key) FILTER (WHERE channel = 'store') AS store_orders,
        sum(amount) AS lifetime_value,
        CASE WHEN count(DISTINCT currency) = 1 THEN min(currency)
             WHEN count(DISTINCT currency) > 1 THEN 'mixed' END AS lifetime_value_currency,
        list_sort(list(DISTINCT order_number) FILTER (WHERE order_number IS NOT NULL)) AS order_numbers
    FROM (
        SELECT customer_id, channel, 'web:' || coalesce(order_number, source_record_id) AS order_key,
               order_number, amount, currency
        FROM intermediate.int_interactions WHERE channel = 'web' AND interaction_type = 'checkout'
        UNION ALL
        SELECT customer_id, channel, 'store:' || source_record_id, order_number, amount, currency
        FROM intermediate.int_interactions WHERE channel = 'store' AND interaction_type = 'purchase'
    ) AS placed
    GROUP BY customer_id
),
channel_use AS (
    SELECT customer_id, channel, count(*) AS uses, min(occurred_at) AS first_used_at, max(occurred_at) AS last_used_at
    FROM intermediate.int_interactions
    GROUP BY customer_id, channel
),
channel_summary AS (
    SELECT
        customer_id,
        array_agg(channel ORDER BY uses DESC, last_used_at DESC, channel) AS channels_used,
        min(first_used_at) AS first_interaction_at,
        max(last_used_at) AS last_interaction_at,
        CAST(sum(uses) AS BIGINT) AS interactions
    FROM channel_use
    GROUP BY customer_id
),
preferred AS (
    SELECT customer_id, channel AS preferred_channel
    FROM (
        SELECT customer_id, channel,
               row_number() OVER (PARTITION BY customer_id ORDER BY uses DESC, last_used_at DESC, channel) AS rank_in_customer
        FROM channel_use
    ) AS ranked
    WHERE rank_in_customer = 1
),
consent AS (
    SELECT
        customer_id,
        max(status) FILTER (WHERE channel = 'email') AS email_consent,
        max(decided_at) FILTER (WHERE channel = 'email') AS email_consent_at,
        max(status) FILTER (WHERE channel = 'sms') AS sms_consent,
        max(decided_at) FILTER (WHERE channel = 'sms') AS sms_consent_at
    FROM profiles.consent
    GROUP BY customer_id
)
SELECT
    c.customer_id,
    g.first_name, g.last_name, g.email, g.phone, g.date_of_birth,
    g.address_line, g.city, g.postcode, g.country, g.loyalty_card,
    ids.emails, ids.phones, ids.loyalty_cards, ids.account_ids, ids.web_user_ids, ids.cookie_ids,
    ids.social_handles, o.order_numbers,
    coalesce(o.order_count, 0) AS order_count,
    coalesce(o.web_orders, 0) AS web_orders,
    coalesce(o.store_orders, 0) AS store_orders,
    coalesce(o.lifetime_value, 0) AS lifetime_value,
    o.lifetime_value_currency,
    coalesce(g.first_seen, cs.first_interaction_at) AS first_seen,
    coalesce(g.last_seen, cs.last_interaction_at) AS last_seen,
    coalesce(cs.interactions, 0) AS interactions,
    p.preferred_channel,
    cs.channels_used,
    coalesce(cn.email_consent, 'unknown') AS email_consent,
    cn.email_consent_at,
    coalesce(cn.sms_consent, 'unknown') AS sms_consent,
    cn.sms_consent_at,
    g.records, g.sources
FROM customers AS c
LEFT JOIN profiles.golden_profile AS g ON g.customer_id = c.customer_id
LEFT JOIN identifiers AS ids ON ids.customer_id = c.customer_id
LEFT JOIN orders AS o ON o.customer_id = c.customer_id
LEFT JOIN channel_summary AS cs ON cs.customer_id = c.customer_id
LEFT JOIN preferred AS p ON p.customer_id = c.customer_id
LEFT JOIN consent AS cn ON cn.customer_id = c.customer_id
