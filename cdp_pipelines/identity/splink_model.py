"""Probabilistic matching with Splink 5 on DuckDB: settings built from config, trained without
labels, saved as a versioned JSON model and reused until a retrain is asked for.

Splink compares *identity nodes*: the distinct attribute combinations within each deterministic
component. Records that are already linked by a strong identifier are compared once, and pairs
inside one component are never generated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import splink.comparison_library as cl
from splink import Linker, SettingsCreator
from splink.backends.duckdb import DuckDBAPI

from cdp_pipelines.identity.config import NODE_COLUMNS, ProbabilisticConfig


SPLINK_SCHEMA = "identity_work"
logger = logging.getLogger(__name__)


def blocking_rule_sql(columns: list[str], across_components: bool = True) -> str:
    """Columns equal on both sides; for prediction, never within one deterministic component
    (those records are already linked). Training keeps them: they are the matches EM learns from."""
    equal = " AND ".join(f"l.{c} = r.{c}" for c in columns)
    return f"{equal} AND l.component <> r.component" if across_components else equal


def settings_dict(config: ProbabilisticConfig) -> dict:
    """The Splink settings (as data) generated from the identity config."""
    comparisons: list = []
    for spec in config.comparisons:
        if spec.type == "custom":
            comparisons.append({
                "output_column_name": spec.column,
                "comparison_description": spec.column,
                "comparison_levels": [
                    {"sql_condition": level.sql, "label_for_charts": level.label, "is_null_level": level.null}
                    for level in spec.levels
                ],
            })
            continue
        comparison_class = getattr(cl, spec.type, None)
        if comparison_class is None:
            raise ValueError(f"unknown Splink comparison {spec.type!r} for column {spec.column!r}")
        comparison = comparison_class(spec.column, **spec.args)
        if spec.tf:
            comparison = comparison.configure(term_frequency_adjustments=True)
        comparisons.append(comparison)
    creator = SettingsCreator(
        link_type="link_and_dedupe",
        unique_id_column_name="node_id",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=[blocking_rule_sql(r) for r in config.blocking_rules],
        additional_columns_to_retain=["component", "strong"],
        retain_intermediate_calculation_columns=True,
        retain_matching_columns=True,
    )
    return creator.create_settings_dict(sql_dialect_str="duckdb")


def settings_fingerprint(config: ProbabilisticConfig) -> str:
    """Changes when anything that shapes the model changes, so a stale model is not reused."""
    payload = json.dumps(
        {"comparisons": [c.model_dump() for c in config.comparisons], "blocking": config.blocking_rules,
         "training": config.training.model_dump()},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class ModelInfo:
    path: Path
    version: int
    trained: bool
    fingerprint: str
    seconds: float


MODEL_FILE = re.compile(r"^model_v(\d+)\.json$")


def _version(path: Path) -> int:
    return int(MODEL_FILE.match(path.name).group(1))


def _model_files(model_dir: Path) -> list[Path]:
    """Saved models, oldest first (manifests beside them are not models)."""
    return sorted((p for p in model_dir.glob("model_v*.json") if MODEL_FILE.match(p.name)), key=_version)


def latest_model(model_dir: Path, fingerprint: str) -> Path | None:
    """The newest saved model trained with the current settings, if any."""
    for path in reversed(_model_files(model_dir)):
        manifest = path.with_suffix(".manifest.json")
        if manifest.exists() and json.loads(manifest.read_text()).get("fingerprint") == fingerprint:
            return path
    return None


def register_node_tables(api: DuckDBAPI, con: duckdb.DuckDBPyConnection) -> list:
    """One Splink input per source (link_and_dedupe across sources)."""
    sources = [row[0] for row in con.execute("SELECT DISTINCT source FROM identity.nodes ORDER BY 1").fetchall()]
    columns = ", ".join(("node_id", "component", "strong", *NODE_COLUMNS))
    frames = []
    for source in sources:
        # Relations with names unique to Splink: Splink looks columns up by bare table name.
        relation = con.sql(f"SELECT {columns} FROM identity.nodes WHERE source = '{source}'")
        frames.append(api.register(relation, table_name=f"cdp_nodes_{source}"))
    return frames


def train_or_load(
    con: duckdb.DuckDBPyConnection,
    config: ProbabilisticConfig,
    model_dir: Path,
    retrain: bool,
) -> tuple[Linker, ModelInfo]:
    """A linker over identity.nodes with a trained model (reused when settings are unchanged)."""
    started = time.perf_counter()
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SPLINK_SCHEMA}")
    api = DuckDBAPI(con, output_schema=SPLINK_SCHEMA)
    frames = register_node_tables(api, con)
    fingerprint = settings_fingerprint(config)
    model_dir.mkdir(parents=True, exist_ok=True)
    existing = None if retrain else latest_model(model_dir, fingerprint)
    if existing is not None:
        linker = Linker(frames, str(existing), log_level=logging.ERROR)
        return linker, ModelInfo(existing, _version(existing), False, fingerprint,
                                 time.perf_counter() - started)

    linker = Linker(frames, settings_dict(config), log_level=logging.ERROR)
    training = config.training
    linker.training.estimate_probability_two_random_records_match(
        [blocking_rule_sql(r, across_components=False) for r in training.prior_rules], recall=training.prior_recall
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=training.u_max_pairs, seed=training.seed)
    sessions = []
    for rule in training.em_blocking_rules:
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                blocking_rule_sql(rule, across_components=False), fix_u_probabilities=True
            )
            sessions.append({"blocking": "+".join(rule), "converged": True})
        except ValueError as error:
            # Splink refuses an m probability that underflows (a level EM drove to zero); the
            # other sessions still train those comparisons, so the session is reported, not fatal.
            logger.warning("EM session blocked on %s did not converge: %s", rule, error)
            sessions.append({"blocking": "+".join(rule), "converged": False, "error": str(error)[:200]})
    existing_versions = _model_files(model_dir)
    version = (_version(existing_versions[-1]) + 1) if existing_versions else 1
    path = model_dir / f"model_v{version}.json"
    linker.misc.save_model_to_json(str(path), overwrite=True)
    path.with_suffix(".manifest.json").write_text(json.dumps({
        "version": version,
        "fingerprint": fingerprint,
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "nodes": con.execute("SELECT count(*) FROM identity.nodes").fetchall()[0][0],
        "em_sessions": sessions,
    }, indent=2))
    return linker, ModelInfo(path, version, True, fingerprint, time.perf_counter() - started)


def predict_edges(con: duckdb.DuckDBPyConnection, linker: Linker, config: ProbabilisticConfig) -> tuple[int, list[dict]]:
    """Score candidate pairs and keep those above keep_probability in identity.probabilistic_edges;
    also the comparisons each blocking rule generated (pairs of earlier rules not repeated).

    The candidate pairs are the table Splink's predict blocks into and then scores; it is
    computed first (Splink caches it, and predict scores that very table), so the comparisons
    are counted on it by its `match_key` (the first rule producing the pair) instead of by a
    second blocking pass (Splink's count_comparisons_from_blocking_rules, ~1 s at 1M)."""
    blocked = linker.inference.compute_blocked_pairs_for_predict()
    try:
        counted = dict(con.execute(
            f"SELECT CAST(match_key AS INTEGER), count(*) FROM {blocked.physical_name} GROUP BY ALL").fetchall())
        predictions = linker.inference.predict(threshold_match_probability=config.keep_probability)
    finally:
        blocked.drop_table_from_database_and_remove_from_cache()
    con.execute(
        f"CREATE OR REPLACE TABLE identity.probabilistic_edges AS "
        f"SELECT * FROM {predictions.physical_name}"
    )
    return con.execute("SELECT count(*) FROM identity.probabilistic_edges").fetchall()[0][0], \
        comparisons_by_rule(config, counted)


def comparisons_by_rule(config: ProbabilisticConfig, counted: dict[int, int]) -> list[dict]:
    """Per blocking rule (in order): its comparisons and the running total, from counts keyed by
    rule index (rules that generated no pair are absent from `counted`)."""
    rows, cumulative = [], 0
    for index, rule in enumerate(config.blocking_rules):
        comparisons = int(counted.get(index, 0))
        cumulative += comparisons
        rows.append({"rule": "+".join(rule), "comparisons": comparisons, "cumulative": cumulative})
    unknown = sorted(set(counted) - set(range(len(config.blocking_rules))))
    if unknown:
        raise ValueError(f"blocked pairs carry match keys {unknown} outside the {len(config.blocking_rules)} blocking rules")
    return rows


def tf_columns(linker: Linker) -> list[str]:
    """Columns whose term frequencies the model uses (some comparisons add them themselves)."""
    return sorted(column.unquote().name for column in linker._settings_obj._term_frequency_columns)


def predict_new_node_edges(
    con: duckdb.DuckDBPyConnection, linker: Linker, config: ProbabilisticConfig, new_nodes: str
) -> str:
    """Score only pairs involving nodes listed in `new_nodes` (a table of node_id): new against
    existing nodes (predict_between) and new against new (predict_within). Term frequencies
    come from all nodes, as in a full prediction. Returns the name of the predictions table.

    Only existing nodes that share the columns of at least one blocking rule with a new node can
    be paired with one, so only those are handed to Splink: the same pairs, without carrying
    every node through Splink's input tables."""
    for column in tf_columns(linker):
        linker.table_management.compute_tf_table(column)
    api = linker._db_api
    columns = ", ".join(("node_id", "component", "strong", *NODE_COLUMNS))
    con.execute(
        f"CREATE OR REPLACE TABLE {SPLINK_SCHEMA}.score_nodes AS "
        f"SELECT source, {columns} FROM identity.nodes SEMI JOIN {new_nodes} USING (node_id)"
    )
    candidates = " UNION ".join(
        f"SELECT n.node_id FROM identity.nodes n SEMI JOIN {SPLINK_SCHEMA}.score_nodes s ON "
        + " AND ".join(f"n.{c} = s.{c}" for c in rule)
        for rule in config.blocking_rules
    )
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {SPLINK_SCHEMA}.candidate_nodes AS
        SELECT source, {columns} FROM identity.nodes
        SEMI JOIN ({candidates}) USING (node_id) ANTI JOIN {new_nodes} USING (node_id)
        """
    )
    new_frames, old_frames = [], []
    for table, frames, prefix in (("score_nodes", new_frames, "cdp_new"), ("candidate_nodes", old_frames, "cdp_old")):
        for (source,) in con.execute(f"SELECT DISTINCT source FROM {SPLINK_SCHEMA}.{table} ORDER BY 1").fetchall():
            frames.append(api.register(
                con.sql(f"SELECT {columns} FROM {SPLINK_SCHEMA}.{table} WHERE source = '{source}'"),
                table_name=f"{prefix}_{source}"))
    con.execute("CREATE OR REPLACE TABLE identity_work.new_edges AS SELECT * FROM identity.probabilistic_edges LIMIT 0")
    if not new_frames:
        return "identity_work.new_edges"
    if len(new_frames) == 1:
        # Splink leaves out its source_dataset column when one table is linked within itself,
        # and its SQL still refers to it: an empty second input keeps the column.
        new_frames.append(api.register(con.sql(f"SELECT {columns} FROM {SPLINK_SCHEMA}.score_nodes WHERE FALSE"),
                                       table_name="cdp_new_none"))
    results = []
    if old_frames:
        results.append(linker.inference.predict_between(
            new_frames, old_frames, threshold_match_probability=config.keep_probability))
    results.append(linker.inference.predict_within(new_frames, threshold_match_probability=config.keep_probability))
    for result in results:
        con.execute(f"INSERT INTO identity_work.new_edges BY NAME SELECT * FROM {result.physical_name}")
    return "identity_work.new_edges"


def save_charts(linker: Linker, con: duckdb.DuckDBPyConnection, out_dir: Path, sample_edges: int = 5) -> dict[str, Path]:
    """The model's match-weight chart and a waterfall of sample edges, as HTML files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    charts: dict[str, Path] = {}
    match_weights = out_dir / "match_weights.html"
    linker.visualisations.match_weights_chart().save(str(match_weights))
    charts["match_weights_chart"] = match_weights
    rows = con.execute(
        f"SELECT * FROM identity.probabilistic_edges ORDER BY match_weight DESC, node_id_l, node_id_r "
        f"LIMIT {int(sample_edges)}"
    ).df()
    if len(rows):
        records = json.loads(rows.to_json(orient="records", date_format="iso"))
        waterfall = out_dir / "waterfall_sample_edges.html"
        linker.visualisations.waterfall_chart(records, filter_nulls=True).save(str(waterfall))
        charts["waterfall_chart"] = waterfall
    return charts
