"""Guarded clustering: deterministic components first, then probabilistic links that respect
conflicts, cannot-link overrides and weak-evidence thresholds.

Connected components of the deterministic graph are computed with scipy (vectorised). Only the
much smaller set of probabilistic links between components goes through the guarded, greedy
merge, strongest link first, so a single weak bridge cannot chain different people together.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def components(n_nodes: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Component label (the smallest node id in the component) for every node 0..n_nodes-1."""
    if n_nodes == 0:
        return np.zeros(0, dtype=np.int64)
    graph = coo_matrix(
        (np.ones(len(left), dtype=np.int8), (left.astype(np.int64), right.astype(np.int64))),
        shape=(n_nodes, n_nodes),
    )
    _, labels = connected_components(graph, directed=False)
    # Relabel each component by its smallest member so labels are stable and meaningful.
    order = np.argsort(labels, kind="stable")
    first_of_label = np.full(labels.max() + 1, -1, dtype=np.int64)
    sorted_labels = labels[order]
    is_first = np.r_[True, sorted_labels[1:] != sorted_labels[:-1]]
    first_of_label[sorted_labels[is_first]] = order[is_first]
    return first_of_label[labels]


def components_with_overrides(n_nodes: int, left: np.ndarray, right: np.ndarray, must: list[tuple[int, int]],
                              cannot: list[tuple[int, int]]) -> tuple[np.ndarray, int]:
    """Component label (smallest member) of nodes 0..n_nodes-1 joined by the edges and the
    must-link pairs, each component holding a cannot-link pair split; also how many were split."""
    left = np.concatenate([left.astype(np.int64), np.array([m[0] for m in must], dtype=np.int64)])
    right = np.concatenate([right.astype(np.int64), np.array([m[1] for m in must], dtype=np.int64)])
    labels = components(n_nodes, left, right)
    # A cannot-link pair inside one component: replay that component's edges without the bridge.
    split = 0
    for a, b in cannot:
        if labels[a] != labels[b]:
            continue
        component = labels[a]
        members = np.flatnonzero(labels == component).tolist()
        member_set = set(members)
        mask = np.isin(left, members)
        comp_edges = [(int(l), int(r)) for l, r in zip(left[mask], right[mask]) if r in member_set]
        forbidden = {frozenset(p) for p in cannot if p[0] in member_set and p[1] in member_set}
        for node, root in split_for_cannot_link(members, comp_edges, forbidden).items():
            labels[node] = root
        split += 1
    return labels, split


@dataclass
class ComponentFacts:
    """What the guard needs to know about a component (or a merged cluster)."""

    records: int
    strong: bool
    dates_of_birth: frozenset = frozenset()
    account_ids: frozenset = frozenset()
    cannot_link_tags: frozenset = frozenset()


@dataclass
class MergeDecision:
    left: int
    right: int
    match_weight: float
    match_probability: float
    accepted: bool
    reason: str


@dataclass
class GuardSettings:
    match_probability: float
    weak_record_probability: float
    overwhelming_match_weight: float
    conflict_attributes: tuple[str, ...] = ("date_of_birth", "account_id", "given_name")
    max_cluster_records: int | None = None
    # A conflict on one of these attributes gives way at this weight instead.
    overwhelming_by_attribute: dict[str, float] = field(default_factory=dict)

    def overwhelms(self, attribute: str, weight: float) -> bool:
        return weight >= self.overwhelming_by_attribute.get(attribute, self.overwhelming_match_weight)


@dataclass(slots=True)
class _Cluster:
    """A cluster being merged. Its sets start as the component's own frozensets and are replaced
    by their unions on a merge, never changed in place, so no component's facts are copied."""

    records: int
    strong: bool
    dobs: frozenset
    accounts: frozenset
    tags: frozenset


_UNKNOWN_COMPONENT = ComponentFacts(records=1, strong=False)


def guarded_merge(
    facts: dict[int, ComponentFacts],
    links: Iterable[tuple],
    settings: GuardSettings,
) -> tuple[dict[int, int], list[MergeDecision]]:
    """Merge components along (left, right, match_weight, match_probability[, names_conflict]) links.

    Links are taken strongest first. Returns the cluster root of every component that took part
    and the decision taken for each link (accepted or the reason it was refused).
    """
    parent: dict[int, int] = {}
    clusters: dict[int, _Cluster] = {}

    def find(node: int) -> int:
        root = node
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(node, node) != root:
            parent[node], node = root, parent[node]
        return root

    def cluster(node: int) -> _Cluster:
        found = clusters.get(node)
        if found is None:
            f = facts.get(node) or _UNKNOWN_COMPONENT
            found = clusters[node] = _Cluster(f.records, f.strong, f.dates_of_birth, f.account_ids, f.cannot_link_tags)
            parent.setdefault(node, node)
        return found

    decisions: list[MergeDecision] = []
    for link in sorted(links, key=lambda link: (-link[2], link[0], link[1])):
        left, right, weight, probability = link[:4]
        names_conflict = bool(link[4]) if len(link) > 4 else False
        cluster(left), cluster(right)
        a, b = find(left), find(right)
        if a == b:
            continue
        ca, cb = clusters[a], clusters[b]
        reason = ""
        needed = settings.match_probability if (ca.strong and cb.strong) else settings.weak_record_probability
        if probability < needed:
            reason = f"probability {probability:.4f} below {needed}"
        elif ca.tags & cb.tags:
            reason = "cannot-link override"
        elif ("given_name" in settings.conflict_attributes and names_conflict
              and not settings.overwhelms("given_name", weight)):
            reason = "conflicting given names"
        elif ("date_of_birth" in settings.conflict_attributes and ca.dobs and cb.dobs
              and ca.dobs.isdisjoint(cb.dobs) and not settings.overwhelms("date_of_birth", weight)):
            reason = "conflicting dates of birth"
        elif ("account_id" in settings.conflict_attributes and ca.accounts and cb.accounts
              and ca.accounts.isdisjoint(cb.accounts) and not settings.overwhelms("account_id", weight)):
            reason = "conflicting account ids"
        if not reason and settings.max_cluster_records and ca.records + cb.records > settings.max_cluster_records:
            reason = f"would exceed {settings.max_cluster_records} records"
        decisions.append(MergeDecision(left, right, weight, probability, not reason, reason or "merged"))
        if reason:
            continue
        # Union by size keeps trees shallow; the smaller id is the root on ties (determinism).
        if (ca.records, -a) < (cb.records, -b):
            a, b, ca, cb = b, a, cb, ca
        parent[b] = a
        ca.records += cb.records
        ca.strong = ca.strong or cb.strong
        ca.dobs = ca.dobs | cb.dobs
        ca.accounts = ca.accounts | cb.accounts
        ca.tags = ca.tags | cb.tags
        del clusters[b]
    return {node: find(node) for node in list(parent)}, decisions


def split_for_cannot_link(
    members: list[int],
    edges: list[tuple[int, int]],
    forbidden: set[frozenset[int]],
) -> dict[int, int]:
    """Re-cluster one deterministic component whose members include a cannot-link pair.

    Edges are replayed in order; an edge that would put a forbidden pair together is skipped.
    Returns the new root (smallest member) of every member.
    """
    tags: dict[int, set[int]] = {m: set() for m in members}
    for tag, pair in enumerate(forbidden):
        for node in pair:
            if node in tags:
                tags[node].add(tag)
    facts = {m: ComponentFacts(records=1, strong=True, cannot_link_tags=frozenset(tags[m])) for m in members}
    settings = GuardSettings(0.0, 0.0, float("-inf"), conflict_attributes=())
    roots, _ = guarded_merge(facts, [(l, r, 1.0, 1.0) for l, r in edges], settings)
    by_root: dict[int, list[int]] = {}
    for m in members:
        by_root.setdefault(roots.get(m, m), []).append(m)
    return {m: min(group) for group in by_root.values() for m in group}
