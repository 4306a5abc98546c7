"""Guarded clustering: components, conflicts, weak evidence, cannot-link."""

import numpy as np

from cdp_pipelines.identity.clustering import (
    ComponentFacts,
    GuardSettings,
    components,
    guarded_merge,
    split_for_cannot_link,
)

GUARD = GuardSettings(match_probability=0.95, weak_record_probability=0.99, overwhelming_match_weight=20.0)


def test_components_label_each_node_by_its_smallest_member():
    labels = components(6, np.array([1, 4, 2]), np.array([3, 5, 1]))
    assert labels.tolist() == [0, 1, 1, 1, 4, 4]


def test_strong_components_merge_above_threshold_only():
    facts = {1: ComponentFacts(3, True), 2: ComponentFacts(2, True), 3: ComponentFacts(1, True)}
    roots, decisions = guarded_merge(facts, [(1, 2, 12.0, 0.999), (2, 3, 3.0, 0.90)], GUARD)
    assert roots[2] == roots[1] and roots[3] != roots[1]
    assert [d.accepted for d in decisions] == [True, False]
    assert decisions[1].reason.startswith("probability")


def test_weak_records_need_stronger_evidence():
    facts = {1: ComponentFacts(4, True), 2: ComponentFacts(1, False)}
    roots, decisions = guarded_merge(facts, [(1, 2, 6.0, 0.97)], GUARD)
    assert roots[1] != roots[2] and "below 0.99" in decisions[0].reason
    roots, _ = guarded_merge(facts, [(1, 2, 9.0, 0.995)], GUARD)
    assert roots[1] == roots[2]


def test_conflicting_dates_of_birth_block_a_bridge_unless_overwhelming():
    facts = {
        1: ComponentFacts(2, True, dates_of_birth=frozenset({"1980-01-01"})),
        2: ComponentFacts(2, True, dates_of_birth=frozenset({"1991-05-05"})),
    }
    roots, decisions = guarded_merge(facts, [(1, 2, 15.0, 0.9999)], GUARD)
    assert roots[1] != roots[2] and decisions[0].reason == "conflicting dates of birth"
    roots, _ = guarded_merge(facts, [(1, 2, 25.0, 0.99999)], GUARD)
    assert roots[1] == roots[2]


def test_a_conflict_can_give_way_at_its_own_weight():
    """Two account ids yield at weight 12; two dates of birth still need 20."""
    from dataclasses import replace

    guard = replace(GUARD, overwhelming_by_attribute={"account_id": 12.0})
    accounts = {1: ComponentFacts(2, True, account_ids=frozenset({"A1"})),
                2: ComponentFacts(2, True, account_ids=frozenset({"A2"}))}
    roots, _ = guarded_merge(accounts, [(1, 2, 13.0, 0.9999)], guard)
    assert roots[1] == roots[2]
    roots, decisions = guarded_merge(accounts, [(1, 2, 11.0, 0.9995)], guard)
    assert roots[1] != roots[2] and decisions[0].reason == "conflicting account ids"
    roots, decisions = guarded_merge(accounts, [(1, 2, 13.0, 0.9999)], GUARD)
    assert roots[1] != roots[2] and decisions[0].reason == "conflicting account ids"
    both = {1: ComponentFacts(2, True, frozenset({"1980-01-01"}), frozenset({"A1"})),
            2: ComponentFacts(2, True, frozenset({"1991-05-05"}), frozenset({"A2"}))}
    roots, decisions = guarded_merge(both, [(1, 2, 13.0, 0.9999)], guard)
    assert roots[1] != roots[2] and decisions[0].reason == "conflicting dates of birth"


def test_no_chaining_through_a_single_weak_bridge():
    # A and B are different people (different DOBs); C links strongly to A and weakly to B.
    facts = {
        1: ComponentFacts(5, True, dates_of_birth=frozenset({"1970-01-01"})),
        2: ComponentFacts(5, True, dates_of_birth=frozenset({"1985-01-01"})),
        3: ComponentFacts(1, True),
    }
    roots, decisions = guarded_merge(facts, [(1, 3, 14.0, 0.9999), (2, 3, 12.0, 0.999)], GUARD)
    assert roots[1] == roots[3] and roots[2] != roots[1]
    assert decisions[1].reason == "conflicting dates of birth"


def test_conflicting_given_names_need_overwhelming_evidence():
    facts = {1: ComponentFacts(1, True), 2: ComponentFacts(1, True)}
    roots, decisions = guarded_merge(facts, [(1, 2, 12.0, 0.9998, True)], GUARD)
    assert roots[1] != roots[2] and decisions[0].reason == "conflicting given names"


def test_cannot_link_is_never_overridden():
    facts = {1: ComponentFacts(1, True, cannot_link_tags=frozenset({0})),
             2: ComponentFacts(1, True, cannot_link_tags=frozenset({0}))}
    roots, decisions = guarded_merge(facts, [(1, 2, 40.0, 1.0)], GUARD)
    assert roots[1] != roots[2] and decisions[0].reason == "cannot-link override"


def test_split_for_cannot_link_cuts_the_bridge():
    # 10-11-12 chained deterministically; 10 and 12 must stay apart.
    roots = split_for_cannot_link([10, 11, 12], [(10, 11), (11, 12)], {frozenset({10, 12})})
    assert roots[10] != roots[12]
    assert roots[11] in (roots[10], roots[12])


def test_merge_over_tables_uses_each_sides_strength_and_facts_of_linkable_components():
    """`resolve._merge` reads facts only for components with a link that can pass; strength
    still decides every weaker link's threshold, and conflicts still block the others."""
    import duckdb

    from cdp_pipelines.identity import resolve
    from cdp_pipelines.identity.config import load_identity_config
    from cdp_pipelines.settings import PROJECT_ROOT

    config = load_identity_config(PROJECT_ROOT / "config" / "identity.yaml")
    config.probabilistic.match_probability = 0.9
    config.probabilistic.weak_record_probability = 0.99
    con = duckdb.connect()
    con.execute("CREATE SCHEMA identity")
    # Components 0..7 with one record each; 3 and 7 carry no strong identifier.
    con.execute("CREATE TABLE identity.record_components AS SELECT range AS rid, range AS component FROM range(8)")
    con.execute("CREATE TABLE identity.component_strength AS "
                "SELECT range AS component, range NOT IN (3, 7) AS strong FROM range(8)")
    con.execute("CREATE TABLE identity.records AS SELECT range AS rid, "
                "CASE range WHEN 4 THEN DATE '1980-01-01' WHEN 5 THEN DATE '1990-01-01' END AS date_of_birth, "
                "NULL::VARCHAR AS account_id FROM range(8)")
    con.execute("CREATE TABLE identity.probabilistic_edges (component_l BIGINT, component_r BIGINT, "
                "match_weight DOUBLE, match_probability DOUBLE, gamma_given_name INTEGER)")
    con.execute("INSERT INTO identity.probabilistic_edges VALUES "
                "(0, 1, 10.0, 0.95, 2), (2, 3, 10.0, 0.95, 2), (4, 5, 10.0, 0.95, 2), "
                "(6, 7, 1.0, 0.5, 2), (0, 6, 0.5, 0.6, 2)")
    decisions, roots = resolve._merge(con, config, [])
    got = sorted(zip(decisions.column("component_l").to_pylist(), decisions.column("component_r").to_pylist(),
                     decisions.column("reason").to_pylist()))
    assert got == [(0, 1, "merged"), (0, 6, "probability 0.6000 below 0.9"), (2, 3, "probability 0.9500 below 0.99"),
                   (4, 5, "conflicting dates of birth"), (6, 7, "probability 0.5000 below 0.99")]
    assert dict(zip(roots.column("component").to_pylist(), roots.column("cluster").to_pylist()))[1] == 0


def test_merging_never_changes_the_components_facts():
    """Clusters start from the components' own sets (no copies) and must replace them on a merge:
    a merged cluster's birth dates must not leak into a component's facts, nor into the guard's
    later view of a component that merged nothing."""
    facts = {
        1: ComponentFacts(2, True, dates_of_birth={"1980-01-01"}, account_ids={"A1"}),
        2: ComponentFacts(2, True, dates_of_birth={"1980-01-01"}, account_ids={"A1"}),
        3: ComponentFacts(1, True, dates_of_birth={"1980-01-01", "1991-05-05"}),
    }
    before = {k: (set(f.dates_of_birth), set(f.account_ids)) for k, f in facts.items()}
    roots, decisions = guarded_merge(facts, [(1, 3, 12.0, 0.999), (1, 2, 11.0, 0.999)], GUARD)
    assert [d.accepted for d in decisions] == [True, True] and roots[1] == roots[2] == roots[3]
    assert {k: (set(f.dates_of_birth), set(f.account_ids)) for k, f in facts.items()} == before
