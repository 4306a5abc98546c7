"""Incremental identity resolution works on the affected region and ends where a full refresh
over the same records ends: same customers (same-customer decisions), every record once."""

import shutil
from pathlib import Path

import duckdb
import pytest

from pipeline_support import CONFIG, resolve_identities

from cdp_pipelines.identity.incremental import STATE_TABLE
from cdp_pipelines.identity.config import OverridePair, Overrides, load_identity_config
from cdp_pipelines.identity.resolve import resolve
from cdp_pipelines.synthetic import generate_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def resolved(tmp_path_factory) -> Path:
    """A warehouse after a full identity run over 500 generated persons, with its saved model."""
    root = tmp_path_factory.mktemp("resolved")
    generate_dataset(persons=500, seed=31, out_dir=root / "data")
    assert resolve_identities(root, root / "data", incremental=False).success
    return root


@pytest.fixture
def config():
    return load_identity_config(CONFIG / "identity.yaml")


class Warehouse:
    """A copy of the resolved warehouse; `run` resolves it (incrementally or not)."""

    def __init__(self, resolved: Path, path: Path, config):
        shutil.copy(resolved / "warehouse.duckdb", path)
        self.path, self.models, self.config = path, resolved / "artifacts" / "identity" / "models", config
        self.con = duckdb.connect(str(path))

    def run(self, run_id: str, incremental: bool, overrides: Overrides | None = None):
        # One connection per run, as in the pipeline (Splink's registered inputs live in it).
        self.con.close()
        self.con = duckdb.connect(str(self.path))
        return resolve(self.con, self.config, overrides or Overrides(), model_dir=self.models, run_id=run_id,
                       incremental=incremental)

    def q(self, sql: str, params=None):
        return self.con.execute(sql, params or []).fetchall()

    def customer(self, record: str) -> str:
        source, record_id = record.split(":", 1)
        return self.q("SELECT customer_id FROM identity.customer_xref WHERE source = ? AND source_record_id = ?",
                      [source, record_id])[0][0]

    def together(self) -> set[tuple[str, str]]:
        return set(self.q(
            """SELECT a.source || ':' || a.source_record_id, b.source || ':' || b.source_record_id
               FROM identity.customer_xref a JOIN identity.customer_xref b
                 ON a.customer_id = b.customer_id AND (a.source, a.source_record_id) < (b.source, b.source_record_id)"""
        ))

    def component_groups(self) -> set[frozenset[str]]:
        """The deterministic components as sets of record keys (rids differ between runs)."""
        return {frozenset(group) for (group,) in self.q(
            """SELECT list(r.source || ':' || r.source_record_id) FROM identity.record_components c
               JOIN identity.records r USING (rid) GROUP BY c.component""")}

    def assert_consistent(self) -> None:
        """Every standardized record once in the xref, with this run's component; one id per cluster."""
        records, xref, distinct = self.q(
            """SELECT (SELECT count(*) FROM standardized.identity_records), (SELECT count(*) FROM identity.customer_xref),
                      (SELECT count(DISTINCT (source, source_record_id)) FROM identity.customer_xref)""")[0]
        assert records == xref == distinct
        assert self.q("""SELECT count(*) FROM standardized.identity_records
                         ANTI JOIN identity.customer_xref USING (source, source_record_id)""")[0][0] == 0
        assert self.q("""SELECT count(*) FROM identity.customer_xref x JOIN identity.records r
                         USING (source, source_record_id) JOIN identity.clusters c USING (rid)
                         WHERE x.component <> c.component OR x.cluster <> c.cluster""")[0][0] == 0
        customers, ids, clusters = self.q(
            """SELECT (SELECT count(DISTINCT customer_id) FROM identity.customer_xref),
                      (SELECT count(*) FROM identity.cluster_ids),
                      (SELECT count(DISTINCT cluster) FROM identity.clusters)""")[0]
        assert customers == ids == clusters
        # Every record in one component, labelled by its smallest record number.
        records, rows, mislabelled = self.q(
            """SELECT (SELECT count(*) FROM identity.records), (SELECT count(*) FROM identity.record_components),
                      (SELECT count(*) FROM (SELECT component, min(rid) AS first FROM identity.record_components
                                             GROUP BY ALL) WHERE component <> first)""")[0]
        assert records == rows and mislabelled == 0

    def close(self):
        self.con.close()


def _both(resolved: Path, tmp_path: Path, config, change, overrides: Overrides | None = None, run_id: str = "run-2"):
    """Apply `change(warehouse)` to two copies; resolve one incrementally, the other in full."""
    incremental, full = Warehouse(resolved, tmp_path / "inc.duckdb", config), Warehouse(resolved, tmp_path / "full.duckdb", config)
    for warehouse in (incremental, full):
        change(warehouse)
    summary = incremental.run(run_id, incremental=True, overrides=overrides)
    full.run(run_id, incremental=False, overrides=overrides)
    return incremental, full, summary


def _unshared(w: Warehouse, id_type: str, extra: str = "TRUE") -> list[tuple]:
    """Records carrying a value of `id_type` that links (not shared), with their customer."""
    return w.q(
        f"""SELECT r.source, r.source_record_id, v.id_value, x.customer_id
            FROM identity.identifier_values v JOIN identity.records r USING (rid)
            JOIN identity.customer_xref x USING (source, source_record_id)
            WHERE v.id_type = '{id_type}' AND {extra}
              AND (v.id_type, v.id_value) NOT IN (SELECT (id_type, id_value) FROM identity.shared_identifiers)
            ORDER BY 1, 2"""
    )


def _bridge(w: Warehouse, email: str, phone: str, record_id: str = "bridge-1") -> None:
    w.con.execute(
        "INSERT INTO standardized.web_events BY NAME "
        "SELECT 'web_events' AS source, ? AS source_record_id, ? AS email, ? AS phone, 'mobile' AS phone_kind",
        [record_id, email, phone],
    )


def _pick_two_customers(w: Warehouse) -> tuple[tuple, tuple]:
    emails = _unshared(w, "email")
    phones = _unshared(w, "phone", "r.phone_kind = 'mobile'")
    a = emails[0]
    b = next(p for p in phones if p[3] != a[3])
    return a, b


def test_new_record_bridging_two_customers_merges_them_as_a_full_refresh_does(resolved, tmp_path, config):
    probe = Warehouse(resolved, tmp_path / "probe.duckdb", config)
    a, b = _pick_two_customers(probe)
    probe.close()

    def change(w):
        _bridge(w, a[2], b[2])
        w.con.execute("INSERT INTO quality.record_changes VALUES ('run-2', 'web_events', 'bridge-1', 'new')")

    incremental, full, summary = _both(resolved, tmp_path, config, change)
    assert summary.incremental["mode"] == "incremental"
    assert summary.incremental["changes_from"] == "record_changes"
    assert summary.incremental["new_records"] == 1
    # Only the region of the two customers was resolved again, not the whole graph.
    assert summary.incremental["affected_records"] < summary.records / 10
    merged = incremental.customer(f"{a[0]}:{a[1]}")
    assert merged == incremental.customer(f"{b[0]}:{b[1]}") == incremental.customer("web_events:bridge-1")
    assert merged in (a[3], b[3])
    changes = incremental.q("SELECT change, customer_id, other_customer_id FROM identity.identity_changes "
                            "WHERE run_id = 'run-2'")
    assert ("merged", merged, ({a[3], b[3]} - {merged}).pop()) in changes
    assert incremental.together() == full.together()
    assert incremental.component_groups() == full.component_groups()
    incremental.assert_consistent()
    full.assert_consistent()


def test_changed_record_losing_its_shared_identifier_splits_as_a_full_refresh_does(resolved, tmp_path, config):
    """The bridge of the previous test, resolved, then changed to carry no phone: the customers
    it joined part again (and no record_changes rows: the records are compared instead)."""
    first = Warehouse(resolved, tmp_path / "first.duckdb", config)
    a, b = _pick_two_customers(first)
    _bridge(first, a[2], b[2])
    first.run("run-2", incremental=True)
    assert first.customer(f"{a[0]}:{a[1]}") == first.customer(f"{b[0]}:{b[1]}")
    first.close()
    bridged = tmp_path / "bridged_root"
    bridged.mkdir()
    shutil.copy(tmp_path / "first.duckdb", bridged / "warehouse.duckdb")
    (bridged / "artifacts").symlink_to(resolved / "artifacts")

    def change(w):
        w.con.execute("UPDATE standardized.web_events SET phone = NULL, phone_kind = NULL "
                      "WHERE source_record_id = 'bridge-1'")

    incremental, full, summary = _both(bridged, tmp_path, config, change, run_id="run-3")
    assert summary.incremental["changes_from"] == "compared with previous records"
    assert summary.incremental["changed_records"] == 1 and summary.incremental["new_records"] == 0
    assert incremental.customer(f"{a[0]}:{a[1]}") != incremental.customer(f"{b[0]}:{b[1]}")
    assert incremental.customer("web_events:bridge-1") == incremental.customer(f"{a[0]}:{a[1]}")
    assert "split" in {row[0] for row in incremental.q(
        "SELECT change FROM identity.identity_changes WHERE run_id = 'run-3'")}
    assert incremental.together() == full.together()
    assert incremental.component_groups() == full.component_groups()
    incremental.assert_consistent()


def test_removed_record_and_overrides_are_honoured_incrementally(resolved, tmp_path, config):
    probe = Warehouse(resolved, tmp_path / "probe.duckdb", config)
    a, b = _pick_two_customers(probe)
    # A customer of several records to split with a cannot-link, and a record to remove.
    big = probe.q("""SELECT customer_id, list(source || ':' || source_record_id ORDER BY source, source_record_id)
                     FROM identity.customer_xref WHERE customer_id NOT IN (?, ?)
                     GROUP BY ALL HAVING count(*) >= 4 ORDER BY count(*) DESC, customer_id LIMIT 2""", [a[3], b[3]])
    probe.close()
    (_, split_records), (removed_customer, removed_records) = big
    gone = removed_records[0].split(":", 1)
    overrides = Overrides(
        must_link=[OverridePair(a=f"{a[0]}:{a[1]}", b=f"{b[0]}:{b[1]}")],
        cannot_link=[OverridePair(a=split_records[0], b=split_records[-1])],
    )

    def change(w):
        w.con.execute(f"DELETE FROM standardized.{gone[0]} WHERE source_record_id = ?", [gone[1]])

    incremental, full, summary = _both(resolved, tmp_path, config, change, overrides)
    assert summary.incremental["mode"] == "incremental" and summary.incremental["removed_records"] == 1
    assert incremental.customer(f"{a[0]}:{a[1]}") == incremental.customer(f"{b[0]}:{b[1]}")
    assert incremental.customer(split_records[0]) != incremental.customer(split_records[-1])
    assert not incremental.q("SELECT * FROM identity.customer_xref WHERE source = ? AND source_record_id = ?", gone)
    assert incremental.together() == full.together()
    assert incremental.component_groups() == full.component_groups()
    incremental.assert_consistent()


def test_nothing_changed_keeps_every_customer_and_changed_settings_resolve_everything(resolved, tmp_path, config):
    w = Warehouse(resolved, tmp_path / "same.duckdb", config)
    before = w.q("SELECT * FROM identity.customer_xref ORDER BY ALL")
    summary = w.run("run-2", incremental=True)
    assert summary.incremental["mode"] == "incremental"
    assert summary.incremental["affected_records"] == 0 and summary.incremental["pairs_scored"] == 0
    assert w.q("SELECT * FROM identity.customer_xref ORDER BY ALL") == before
    assert not w.q("SELECT * FROM identity.identity_changes WHERE run_id = 'run-2'")

    w.config = config.model_copy(deep=True)
    w.config.clustering.overwhelming_match_weight += 1
    summary = w.run("run-3", incremental=True)
    assert summary.incremental["whole_graph_because"] == "identity settings changed since the previous run"
    summary = w.run("run-4", incremental=True)
    assert summary.incremental["mode"] == "incremental"
    w.assert_consistent()


def test_pairs_kept_by_a_whole_graph_run_carry_this_runs_components(resolved, tmp_path, config):
    """A whole-graph incremental run keeps last run's scored pairs; a record numbered first
    shifts every record id and so every component id, which the kept pairs must follow."""
    w = Warehouse(resolved, tmp_path / "renumbered.duckdb", config)
    w.con.execute(f"DROP TABLE {STATE_TABLE}")  # as a run stopped half way leaves it
    w.con.execute(
        "INSERT INTO standardized.crm_accounts BY NAME SELECT 'crm_accounts' AS source, "
        "'0000-first' AS source_record_id, 'first.in.line@example.org' AS email")
    summary = w.run("run-2", incremental=True)
    assert summary.incremental["mode"] == "whole graph" and summary.incremental["pairs_kept"] > 0
    edges, stale = w.q(
        """SELECT count(*), count(*) FILTER (WHERE e.component_l <> l.component OR e.component_r <> r.component)
           FROM identity.probabilistic_edges e
           JOIN identity.nodes l ON l.node_id = e.node_id_l JOIN identity.nodes r ON r.node_id = e.node_id_r""")[0]
    assert edges == summary.probabilistic_edges and stale == 0
    w.assert_consistent()


def test_incremental_run_stopped_half_way_leaves_the_next_one_resolving_everything(resolved, tmp_path, config,
                                                                                     monkeypatch):
    from cdp_pipelines.identity import incremental as incremental_module

    probe = Warehouse(resolved, tmp_path / "probe.duckdb", config)
    a, b = _pick_two_customers(probe)
    probe.close()

    def broken(con):
        raise RuntimeError("stopped")

    w = Warehouse(resolved, tmp_path / "stopped.duckdb", config)
    _bridge(w, a[2], b[2])
    with monkeypatch.context() as patch:
        patch.setattr(incremental_module, "update_nodes", broken)
        with pytest.raises(RuntimeError):
            w.run("run-2", incremental=True)
    summary = w.run("run-3", incremental=True)
    assert summary.incremental["mode"] == "whole graph"
    assert "resolution_state" in summary.incremental["whole_graph_because"]
    assert w.customer(f"{a[0]}:{a[1]}") == w.customer(f"{b[0]}:{b[1]}")
    w.assert_consistent()
