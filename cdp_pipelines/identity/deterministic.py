"""Deterministic evidence: strong identifiers shared by records, with shared-value detection.

Everything runs as SQL in the warehouse. A value (an email, a mobile, a cookie...) links every
record carrying it, unless more distinct people use it than its rule allows; then it is
recorded in `identity.shared_identifiers` and left to the probabilistic model.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from cdp_pipelines.identity.config import DeterministicConfig
from cdp_pipelines.standardize.names import name_variant_pairs

NAME_VARIANTS = "identity.name_variants"


def _hint_expression(column: str, id_type: str) -> str:
    """A value whose distinct values are distinct people: a birth year (typos in day or month do
    not make a second person), or an identifier other than the one being judged."""
    if column == id_type:
        return "NULL"
    if column == "date_of_birth":
        return "CAST(year(CAST(date_of_birth AS DATE)) AS VARCHAR)"
    return f"CAST({column} AS VARCHAR)"


def identifier_values_sql(config: DeterministicConfig, records: str = "identity.records") -> str:
    """One row per (record, identifier type, value) for the configured strong identifiers."""
    parts = []
    for id_type, rule in config.identifiers.items():
        where = f"{id_type} IS NOT NULL"
        if rule.phone_kinds and id_type == "phone":
            kinds = ", ".join(f"'{k}'" for k in rule.phone_kinds)
            where += f" AND phone_kind IN ({kinds})"
        people_by = rule.people_by if rule.people_by != id_type else "NULL"
        # The raw first name travels with the hint: "tiba" is a typo of "tina", even when the
        # nickname-resolved given names ("tiba", "christiana") look like two people.
        second = "first_name" if rule.people_by == "given_name" else "NULL"
        extra = "".join(f", {_hint_expression(column, id_type)} AS hint_{column}" for column in config.distinct_people_also_by)
        parts.append(
            f"SELECT rid, '{id_type}' AS id_type, CAST({id_type} AS VARCHAR) AS id_value, "
            f"CAST({people_by} AS VARCHAR) AS person_hint, CAST({second} AS VARCHAR) AS person_hint_alt{extra} "
            f"FROM {records} WHERE {where}"
        )
    return "\nUNION ALL\n".join(parts)


def shared_identifiers_sql(config: DeterministicConfig, values: str = "identity.identifier_values") -> str:
    """The values of `values` (rows of identity.identifier_values) used by more distinct people
    than their rule allows. Every value is judged on its own rows only, so a subset of values
    (with all their rows) gives the same answer for those values as the whole table."""
    limits = " UNION ALL ".join(
        f"SELECT '{t}' AS id_type, {r.max_people} AS max_people, "
        f"{'TRUE' if r.people_by == 'given_name' else 'FALSE'} AS by_name"
        for t, r in config.identifiers.items()
    )
    similarity = float(config.same_person_name_similarity)
    # Names the nicknames package relates ("debbie" and "deborah", "ron" and "aaron") are one person.
    def variant_of(name: str) -> str:
        """SQL: the other name (given or as written) is a known variant of `name`."""
        if not config.same_person_name_variants:
            return "FALSE"
        return (f"EXISTS (SELECT 1 FROM {NAME_VARIANTS} v "
                f"WHERE v.name IN (h.person_hint, h.person_hint_alt) AND v.variant = {name})")

    variant_of_modal = variant_of("m.modal_hint")
    variant_of_spelling = variant_of("s.spelling")
    other_counts = ", ".join(
        ["1", *(f"count(DISTINCT hint_{column})" for column in config.distinct_people_also_by)]
    )
    # Counting distinct values is dear; a column whose smallest and largest value agree holds
    # at most one, so exact counts are taken only for the few values where some column differs.
    several_hints = " OR ".join(
        f"coalesce(min(hint_{column}) <> max(hint_{column}), FALSE)" for column in config.distinct_people_also_by
    ) or "FALSE"
    # Distinct people per value: for names, the most frequent name is one person and every other
    # name that is neither similar to it, nor an initial of it, nor a known variant of it counts
    # as another person; bare initials never do (they cannot tell people apart).
    return f"""
        WITH limits AS ({limits}),
        sizes AS (
            SELECT id_type, id_value, count(*) AS records, {several_hints} AS several_hints
            FROM {values} GROUP BY ALL
        ),
        hints AS (
            -- A value seen on one record has one name: only values on several records are judged.
            SELECT id_type, id_value, person_hint, person_hint_alt, count(*) AS n
            FROM {values} SEMI JOIN (SELECT id_type, id_value FROM sizes WHERE records > 1) USING (id_type, id_value)
            WHERE person_hint IS NOT NULL
            GROUP BY ALL
        ),
        modal AS (
            -- The most frequent full name (initials cannot tell people apart, so an initial
            -- is the modal hint only when nothing longer was seen).
            SELECT id_type, id_value, arg_max(person_hint, (length(person_hint) > 2, n, person_hint)) AS modal_hint
            FROM hints GROUP BY ALL
        ),
        modal_spellings AS (
            -- The first names as written under the modal name ("erick" and "frederick" both
            -- resolve to "frederick").
            SELECT DISTINCT h.id_type, h.id_value, h.person_hint_alt AS spelling
            FROM hints h JOIN modal m ON m.id_type = h.id_type AND m.id_value = h.id_value
                                     AND m.modal_hint = h.person_hint
            WHERE h.person_hint_alt IS NOT NULL
        ),
        other_names AS (
            -- Names that are not the modal one: not similar to it or to any of its spellings,
            -- not an initial of it, and not a known variant of it or of its spellings.
            SELECT h.id_type, h.id_value, h.person_hint
            FROM hints h JOIN modal m USING (id_type, id_value) JOIN limits l USING (id_type)
            WHERE h.person_hint <> m.modal_hint
              AND (NOT l.by_name OR (
                  length(h.person_hint) > 2 AND length(m.modal_hint) > 2
                  AND jaro_winkler_similarity(h.person_hint, m.modal_hint) < {similarity}
                  AND NOT starts_with(m.modal_hint, h.person_hint)
                  AND NOT starts_with(h.person_hint, m.modal_hint)
                  AND NOT {variant_of_modal}
                  AND NOT EXISTS (
                      SELECT 1 FROM modal_spellings s
                      WHERE s.id_type = h.id_type AND s.id_value = h.id_value
                        AND (jaro_winkler_similarity(h.person_hint_alt, s.spelling) >= {similarity}
                             OR {variant_of_spelling}))))
        ),
        people AS (
            SELECT id_type, id_value, 1 + count(DISTINCT person_hint) AS distinct_people
            FROM other_names GROUP BY ALL
        ),
        by_other_identifiers AS (
            SELECT id_type, id_value, greatest({other_counts}) AS other_people
            FROM {values} SEMI JOIN (SELECT id_type, id_value FROM sizes WHERE several_hints) USING (id_type, id_value)
            GROUP BY ALL
        ),
        shared AS (
            SELECT s.id_type, s.id_value,
                   greatest(coalesce(p.distinct_people, 1), coalesce(o.other_people, 1)) AS distinct_people,
                   l.max_people, s.records
            FROM sizes s JOIN limits l USING (id_type)
            LEFT JOIN by_other_identifiers o USING (id_type, id_value)
            LEFT JOIN people p USING (id_type, id_value)
            WHERE greatest(coalesce(p.distinct_people, 1), coalesce(o.other_people, 1)) > l.max_people
        ),
        examples AS (
            SELECT id_type, id_value, list(person_hint ORDER BY n DESC, person_hint)[1:5] AS example_hints
            FROM hints SEMI JOIN shared USING (id_type, id_value) GROUP BY ALL
        )
        SELECT s.id_type, s.id_value, s.distinct_people, s.max_people, s.records, e.example_hints
        FROM shared s LEFT JOIN examples e USING (id_type, id_value)
        """


def deterministic_edges_sql(values: str = "identity.identifier_values") -> str:
    """Star edges: every record carrying a non-shared value links to the value's first record.
    Like sharing, a value's edges depend on that value's rows only."""
    return f"""
        WITH usable AS (
            SELECT v.* FROM {values} v
            ANTI JOIN identity.shared_identifiers s USING (id_type, id_value)
        ),
        anchors AS (SELECT id_type, id_value, min(rid) AS anchor FROM usable GROUP BY ALL)
        SELECT a.anchor AS rid_l, u.rid AS rid_r, u.id_type AS rule, u.id_value
        FROM usable u JOIN anchors a USING (id_type, id_value)
        WHERE u.rid <> a.anchor
        """


def identifier_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    counts = con.execute(
        """
        SELECT (SELECT count(*) FROM identity.identifier_values),
               (SELECT count(*) FROM identity.shared_identifiers),
               (SELECT count(*) FROM identity.deterministic_edges)
        """
    ).fetchall()[0]
    return {"identifier_values": counts[0], "shared_identifiers": counts[1], "deterministic_edges": counts[2]}


def build_name_variants(con: duckdb.DuckDBPyConnection) -> None:
    """identity.name_variants: the (name, variant) pairs sharing is judged with."""
    pairs = name_variant_pairs()
    table = pa.table({"name": pa.array([a for a, _ in pairs], pa.string()),
                      "variant": pa.array([b for _, b in pairs], pa.string())})
    con.register("_name_variants", table)
    con.execute(f"CREATE OR REPLACE TABLE {NAME_VARIANTS} AS SELECT * FROM _name_variants")
    con.unregister("_name_variants")


def build_identifier_tables(con: duckdb.DuckDBPyConnection, config: DeterministicConfig) -> dict[str, int]:
    """Create identity.identifier_values, identity.shared_identifiers, identity.deterministic_edges."""
    build_name_variants(con)
    con.execute(f"CREATE OR REPLACE TABLE identity.identifier_values AS {identifier_values_sql(config)}")
    con.execute(f"CREATE OR REPLACE TABLE identity.shared_identifiers AS {shared_identifiers_sql(config)}")
    con.execute(f"CREATE OR REPLACE TABLE identity.deterministic_edges AS {deterministic_edges_sql()}")
    return identifier_counts(con)


def update_identifier_tables(
    con: duckdb.DuckDBPyConnection, config: DeterministicConfig, removed_rids: str, records: str
) -> dict[str, int]:
    """Incremental form of build_identifier_tables: the records of `removed_rids` (a table of rid)
    lose their identifier rows, the records of `records` (rows shaped like identity.records) add
    theirs, and sharing and edges are judged again only for the values those rows carry (left in
    identity_work.touched_values); every other value keeps its rows, verdict and edges."""
    build_name_variants(con)
    con.execute(
        f"""
        CREATE OR REPLACE TABLE identity_work.touched_values AS
        SELECT DISTINCT id_type, id_value FROM (
            SELECT v.id_type, v.id_value FROM identity.identifier_values v SEMI JOIN {removed_rids} USING (rid)
            UNION ALL
            SELECT id_type, id_value FROM ({identifier_values_sql(config, records)})
        )
        """
    )
    con.execute(f"DELETE FROM identity.identifier_values WHERE rid IN (SELECT rid FROM {removed_rids})")
    con.execute(f"INSERT INTO identity.identifier_values {identifier_values_sql(config, records)}")
    # Every row of the touched values, read once: the sharing and edge queries read them often.
    con.execute("CREATE OR REPLACE TABLE identity_work.touched_rows AS SELECT v.* FROM identity.identifier_values v "
                "SEMI JOIN identity_work.touched_values t USING (id_type, id_value)")
    touched = "identity_work.touched_rows"
    con.execute(
        "DELETE FROM identity.shared_identifiers s USING identity_work.touched_values t "
        "WHERE s.id_type = t.id_type AND s.id_value = t.id_value"
    )
    con.execute(f"INSERT INTO identity.shared_identifiers {shared_identifiers_sql(config, touched)}")
    con.execute(
        "DELETE FROM identity.deterministic_edges e USING identity_work.touched_values t "
        "WHERE e.rule = t.id_type AND e.id_value = t.id_value"
    )
    con.execute(f"INSERT INTO identity.deterministic_edges {deterministic_edges_sql(touched)}")
    return identifier_counts(con)
