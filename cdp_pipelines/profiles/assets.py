"""Dagster assets of the profiles stage: erasure, active xref, golden profiles, identifiers, consent.

Everything downstream of identity reads profiles.active_xref, the xref without customers on the
erasure list, so an erased person is absent from profiles, context, segments and serving alike.
"""

from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from cdp_pipelines import settings
from cdp_pipelines.config_files import read_yaml_mapping
from cdp_pipelines.ingest.sources_config import load_sources
from cdp_pipelines.metadata import OWNERS, table_metadata
from cdp_pipelines.privacy import mask_value
from cdp_pipelines.profiles import consent as consent_rules
from cdp_pipelines.profiles import suppression
from cdp_pipelines.profiles.config_files import ProfilesConfigError
from cdp_pipelines.operations import scoped_refresh
from cdp_pipelines.operations.refresh_config import IncrementalRefreshConfig
from cdp_pipelines.operations.tracking import RECORD_CHANGES
from cdp_pipelines.profiles.identifiers import (
    CUSTOMER_IDENTIFIERS, customer_identifiers_select, identifier_counts, records_sql,
)
from cdp_pipelines.profiles.survivorship import (
    GOLDEN_PROFILE, check_display_columns, fill_rates_and_winning_sources, golden_profile_select,
    load_survivorship_config,
)
from cdp_pipelines.resources import ProjectPathsResource, WarehouseResource

XREF = dg.AssetKey(["identity", "customer_xref"])
IDENTITY_RECORDS = dg.AssetKey(["standardized", "identity_records"])
SUPPRESSED = dg.AssetKey(["profiles", "suppressed_customers"])
AUDIT = dg.AssetKey(["profiles", "erasure_audit"])
ACTIVE_XREF = dg.AssetKey(["profiles", "active_xref"])
GOLDEN = dg.AssetKey(["profiles", "golden_profile"])
IDENTIFIERS = dg.AssetKey(["profiles", "customer_identifiers"])
CONSENT = dg.AssetKey(["profiles", "consent"])
CONSENT_SIGNALS = dg.AssetKey(["profiles", "consent_signals"])
SURVIVORSHIP_FILE = "survivorship.yaml"
CONSENT_FILE = "consent.yaml"
GROUP = "profiles"


def _sources_named_in(file_name: str, keys: tuple[str, ...]) -> list[dg.AssetKey]:
    """standardized.<source> tables a config file reads, for lineage; the run validates the file."""
    try:
        content = read_yaml_mapping(settings.config_dir() / file_name, ProfilesConfigError)
    except ProfilesConfigError:
        return []
    names: set[str] = set()
    if "attributes" in keys and isinstance(content.get("attributes"), dict):
        for rule in content["attributes"].values():
            display = rule.get("display") if isinstance(rule, dict) else None
            names.update(display if isinstance(display, dict) else {})
    if "signals" in keys and isinstance(content.get("signals"), list):
        names.update(s.get("source") for s in content["signals"] if isinstance(s, dict))
    return [dg.AssetKey(["standardized", n]) for n in sorted(n for n in names if isinstance(n, str))]


def sources_with_fixed_columns(sources_file: Path) -> set[str]:
    """Declared sources whose tables hold every column of their files (all but JSON lines, whose
    tables only have the keys some record carried): a consent column they lack is a mistake."""
    return {s.name for s in load_sources(sources_file).sources if s.format != "jsonl"}


def suppression_path(paths: ProjectPathsResource) -> Path:
    configured = getattr(paths, "suppression_file", None)
    return Path(configured) if configured else suppression.suppression_file()


@dg.multi_asset(
    specs=[
        dg.AssetSpec(SUPPRESSED, deps=[XREF, IDENTITY_RECORDS],
                     description="Customers with any identifier whose SHA-256 hash is on the erasure list, "
                                 "recomputed every run so later records of an erased person stay out.",
                     kinds={"duckdb"}, owners=OWNERS, group_name=GROUP),
        dg.AssetSpec(AUDIT, deps=[XREF, IDENTITY_RECORDS],
                     description="Per erasure request: customers and records suppressed, first and last "
                                 "run that applied it. Holds no personal data.",
                     kinds={"duckdb"}, owners=OWNERS, group_name=GROUP),
    ],
)
def erasure_requests_applied(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                             paths: ProjectPathsResource):
    """Match the hashed erasure list against every identifier of every resolved customer."""
    path = suppression_path(paths)
    with warehouse.connect() as con:
        summary = suppression.apply_erasure_requests(con, path, datetime.now(timezone.utc))
        suppressed_meta = table_metadata(con, suppression.SUPPRESSED)
        audit_meta = table_metadata(con, suppression.AUDIT)
    context.log.info(f"{summary['requests']} erasure list entries -> {summary['customers_suppressed']} customers suppressed")
    yield dg.MaterializeResult(asset_key=SUPPRESSED, metadata={
        **suppressed_meta, **summary, "erasure_list": dg.MetadataValue.path(str(path))})
    yield dg.MaterializeResult(asset_key=AUDIT, metadata=audit_meta)


@dg.asset(key=ACTIVE_XREF, deps=[XREF, SUPPRESSED], kinds={"duckdb"}, owners=OWNERS, group_name=GROUP)
def active_xref(context: dg.AssetExecutionContext, config: IncrementalRefreshConfig,
                warehouse: WarehouseResource) -> dg.MaterializeResult:
    """identity.customer_xref minus suppressed customers: the xref every profile, context,
    segment and serving model reads, so erasure applies everywhere by construction.

    Each build is a generation; in an incremental run it lists the customers it changed, and
    the tables downstream refresh only those customers' rows."""
    with warehouse.connect() as con:
        changes = RECORD_CHANGES if scoped_refresh.table_exists(con, RECORD_CHANGES) else None
        diff = "_active_xref_diff"
        if config.incremental and scoped_refresh.table_exists(con, suppression.ACTIVE_XREF) \
                and suppression.update_active_xref(con, diff):
            generation = scoped_refresh.record_generation(con, suppression.ACTIVE_XREF, context.run.run_id, changes,
                                                          moved=suppression.moved_customers_sql(diff))
            con.execute(f"DROP TABLE {diff}")
        else:
            following = "profiles.active_xref__next"
            suppression.build_active_xref(con, target=following)
            generation = scoped_refresh.record_generation(con, following, context.run.run_id, changes)
            con.execute(f"DROP TABLE IF EXISTS {suppression.ACTIVE_XREF}")
            con.execute(f"ALTER TABLE {following} RENAME TO {suppression.ACTIVE_XREF.split('.')[1]}")
        meta = table_metadata(con, suppression.ACTIVE_XREF)
        removed = con.execute(
            f"SELECT (SELECT count(*) FROM {suppression.XREF}) - (SELECT count(*) FROM {suppression.ACTIVE_XREF})"
        ).fetchall()[0][0]
    return dg.MaterializeResult(metadata={**meta, "records_suppressed": int(removed),
                                          "generation": dg.MetadataValue.json(generation)})


@dg.asset(key=GOLDEN, deps=[ACTIVE_XREF, IDENTITY_RECORDS, *_sources_named_in(SURVIVORSHIP_FILE, ("attributes",))],
          kinds={"duckdb"}, owners=OWNERS, group_name=GROUP)
def golden_profile(config: IncrementalRefreshConfig, warehouse: WarehouseResource,
                   paths: ProjectPathsResource) -> dg.MaterializeResult:
    """One row per active customer; each attribute chosen by the rule declared in
    config/survivorship.yaml, with the source, record and time it came from."""
    rules = load_survivorship_config(paths.config_path(SURVIVORSHIP_FILE))
    with warehouse.connect() as con:
        display = check_display_columns(con, rules)

        def select_for(xref: str) -> str:
            return golden_profile_select(rules, records_sql(xref), display)

        plan = scoped_refresh.refresh_from_xref(
            con, GOLDEN_PROFILE, select_for, suppression.ACTIVE_XREF,
            scoped_refresh.fingerprint(select_for("xref")), config.incremental)
        fill, shares = fill_rates_and_winning_sources(con, rules)
        meta = table_metadata(con, GOLDEN_PROFILE, preview_columns=[
            "customer_id", "records", "sources", "first_seen", "last_seen", *list(rules.attributes)[:6]])
    return dg.MaterializeResult(metadata={
        **meta,
        **plan.metadata(),
        "fill_rates": dg.MetadataValue.json(fill),
        "winning_source_shares": dg.MetadataValue.json(shares),
        "rules": dg.MetadataValue.json({a: r.rule for a, r in rules.attributes.items()}),
    })


def _masked_identifier_preview(con, limit: int = 10) -> dg.MetadataValue:
    frame = con.execute(
        f"SELECT customer_id, identifier_type, identifier_value, first_seen, last_seen, records, sources "
        f"FROM {CUSTOMER_IDENTIFIERS} LIMIT {int(limit)}"
    ).df()
    if not settings.show_pii():
        frame["identifier_value"] = [mask_value(v, t) for v, t in zip(frame["identifier_value"], frame["identifier_type"])]
    frame = frame.astype("string")
    return dg.MetadataValue.md(frame.to_markdown(index=False) if len(frame) else "_(no rows)_")


@dg.asset(key=IDENTIFIERS, deps=[ACTIVE_XREF, IDENTITY_RECORDS], kinds={"duckdb"}, owners=OWNERS, group_name=GROUP)
def customer_identifiers(config: IncrementalRefreshConfig, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Every identifier each active customer is known by, with when and where it was seen:
    what lookups and channel systems key on."""
    with warehouse.connect() as con:
        plan = scoped_refresh.refresh_from_xref(
            con, CUSTOMER_IDENTIFIERS, customer_identifiers_select, suppression.ACTIVE_XREF,
            scoped_refresh.fingerprint(customer_identifiers_select("xref")), config.incremental)
        meta = table_metadata(con, CUSTOMER_IDENTIFIERS, preview_columns=["customer_id", "identifier_type"])
        meta["preview"] = _masked_identifier_preview(con)
        counts = identifier_counts(con)
    return dg.MaterializeResult(metadata={**meta, **plan.metadata(),
                                          "identifiers_by_type": dg.MetadataValue.json(counts)})


@dg.multi_asset(
    specs=[
        dg.AssetSpec(CONSENT, deps=[ACTIVE_XREF, *_sources_named_in(CONSENT_FILE, ("signals",))],
                     description="One row per active customer and channel: opt_in, opt_out or unknown, "
                                 "from the most recent explicit choice, with its source record.",
                     kinds={"duckdb"}, owners=OWNERS, group_name=GROUP),
        dg.AssetSpec(CONSENT_SIGNALS, deps=[ACTIVE_XREF, *_sources_named_in(CONSENT_FILE, ("signals",))],
                     description="Every explicit consent choice counted, per customer and channel: the "
                                 "history behind profiles.consent.",
                     kinds={"duckdb"}, owners=OWNERS, group_name=GROUP),
    ],
)
def consent(context: dg.AssetExecutionContext, config: IncrementalRefreshConfig, warehouse: WarehouseResource,
            paths: ProjectPathsResource):
    """Resolve consent conservatively from the explicit signals declared in config/consent.yaml."""
    rules = consent_rules.load_consent_config(paths.config_path(CONSENT_FILE))
    fixed_columns = sources_with_fixed_columns(Path(paths.sources_file))
    with warehouse.connect() as con:
        summary = _refresh_consent(con, rules, config.incremental, fixed_columns)
        consent_meta = table_metadata(con, consent_rules.CONSENT)
        signals_meta = table_metadata(con, consent_rules.CONSENT_SIGNALS)
        counts = consent_rules.status_counts(con)
    if summary["skipped_signals"]:
        context.log.warning(f"consent signals skipped: {summary['skipped_signals']}")
    yield dg.MaterializeResult(asset_key=CONSENT, metadata={
        **consent_meta, **summary["refresh"], "status_by_channel": dg.MetadataValue.json(counts),
        "skipped_signals": dg.MetadataValue.json(summary["skipped_signals"]),
        "undated_opt_ins_ignored": summary["undated_opt_ins_ignored"]})
    yield dg.MaterializeResult(asset_key=CONSENT_SIGNALS, metadata=signals_meta)


def _refresh_consent(con, rules: consent_rules.ConsentConfig, incremental: bool, fixed_columns: set[str]) -> dict:
    """Both consent tables, whole or for the customers changed since they were built; a signal's
    column missing from a source in `fixed_columns` (declared, not JSON lines) is refused."""
    signals, skipped = consent_rules.usable_signals(con, rules, fixed_columns)
    xref = suppression.ACTIVE_XREF
    print_ = scoped_refresh.fingerprint(consent_rules.all_signals_sql(signals, rules, "xref"),
                                        consent_rules.signals_select("choices"),
                                        consent_rules.consent_select(rules, "xref", "signals"))
    plan = scoped_refresh.plan_refresh(con, consent_rules.CONSENT, print_, incremental)
    if plan.mode == "scoped" and scoped_refresh.state_fingerprint(con, consent_rules.CONSENT_SIGNALS) != print_:
        plan = scoped_refresh.RefreshPlan(plan.target, "full", "signals table out of step", plan.generation, print_)
    if plan.mode == "full":
        summary = consent_rules.build_consent(con, rules, xref, fixed_columns)
    else:
        summary = {"skipped_signals": skipped, "undated_opt_ins_ignored": 0}
        if plan.mode == "scoped":
            with scoped_refresh.narrowed_table(con, xref, plan) as scoped_xref:
                signals_plan = scoped_refresh.RefreshPlan(consent_rules.CONSENT_SIGNALS, "scoped", plan.reason,
                                                          plan.generation, print_, plan.scope_table)
                with consent_rules.staged_choices(con, signals, rules, scoped_xref) as choices:
                    summary["undated_opt_ins_ignored"] = consent_rules.undated_opt_ins(con, choices)
                    scoped_refresh.replace_scope_rows(con, signals_plan, consent_rules.signals_select(choices))
                scoped_refresh.replace_scope_rows(con, plan, consent_rules.consent_select(
                    rules, scoped_xref, scoped_refresh.narrowed(consent_rules.CONSENT_SIGNALS, plan)))
    scoped_refresh.mark_refreshed(con, scoped_refresh.RefreshPlan(
        consent_rules.CONSENT_SIGNALS, plan.mode, plan.reason, plan.generation, print_))
    scoped_refresh.mark_refreshed(con, plan)
    return {**summary, "refresh": plan.metadata()}
