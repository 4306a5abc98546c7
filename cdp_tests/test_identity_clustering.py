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
