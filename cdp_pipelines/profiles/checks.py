"""Asset checks of the profiles stage; the blocking ones stop bad profiles reaching channels."""

from __future__ import annotations

import dagster as dg

from cdp_pipelines.metadata import BACKGROUND_STEP_TAGS
from cdp_pipelines.profiles import consent as consent_rules
from cdp_pipelines.profiles import suppression
from cdp_pipelines.profiles.assets import AUDIT, CONSENT, GOLDEN, IDENTIFIERS, suppression_path
from cdp_pipelines.profiles.identifiers import CUSTOMER_IDENTIFIERS
from cdp_pipelines.profiles.survivorship import GOLDEN_PROFILE
from cdp_pipelines.resources import ProjectPathsResource, WarehouseResource


def _count(con, sql: str) -> int:
    return int(con.execute(sql).fetchall()[0][0])


@dg.asset_check(asset=GOLDEN, blocking=True, description="customer_id is unique in the golden profile.")
def golden_profile_unique_customer(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        duplicated = _count(con, f"SELECT count(*) FROM (SELECT customer_id FROM {GOLDEN_PROFILE} "
                                 "GROUP BY ALL HAVING count(*) > 1)")
    return dg.AssetCheckResult(
        passed=duplicated == 0, metadata={"duplicated_customer_ids": duplicated},
        description=None if duplicated == 0 else f"{duplicated} customer ids have more than one golden profile row",
    )


def coverage_gaps(con) -> tuple[int, int]:
    """Active customers without a golden profile row, and golden profile rows of no active
    customer, in one join (the active customers are read once)."""
    missing, extra = con.execute(
        f"""SELECT count(*) FILTER (WHERE g.present IS NULL), count(*) FILTER (WHERE a.present IS NULL)
            FROM (SELECT DISTINCT customer_id, TRUE AS present FROM {suppression.ACTIVE_XREF}) a
            FULL JOIN (SELECT customer_id, TRUE AS present FROM {GOLDEN_PROFILE}) g ON g.customer_id = a.customer_id"""
    ).fetchall()[0]
    return int(missing), int(extra)


@dg.asset_check(asset=GOLDEN, blocking=True,
                description="Every customer in profiles.active_xref has exactly one golden profile, and no other exists.")
def golden_profile_covers_active_customers(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        missing, extra = coverage_gaps(con)
    passed = missing == 0 and extra == 0
    return dg.AssetCheckResult(
        passed=passed, metadata={"active_customers_without_profile": missing, "profiles_without_active_customer": extra},
        description=None if passed else f"{missing} active customers lack a profile; {extra} profiles are not active customers",
    )


def _no_suppressed_check(asset: dg.AssetKey, table: str, name: str, by_hash: bool = False) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name=name, blocking=True,
                    description=f"No customer on the erasure list appears in {table}.")
    def _check(warehouse: WarehouseResource, paths: ProjectPathsResource) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            present = _count(con, f"SELECT count(DISTINCT customer_id) FROM {table} "
                                  f"SEMI JOIN {suppression.SUPPRESSED} USING (customer_id)")
            hashed = 0
            if by_hash:
                # Defence in depth: no identifier left in the table hashes to an entry on the list.
                suppression.load_erasure_requests(con, suppression_path(paths))
                hashed = _count(con, f"SELECT count(*) FROM {table} i JOIN "
                                     f"(SELECT DISTINCT identifier_type, identifier_hash FROM erasure_requests) e "
                                     f"ON e.identifier_type = i.identifier_type AND e.identifier_hash = sha256(i.identifier_value)")
        passed = present == 0 and hashed == 0
        return dg.AssetCheckResult(
            passed=passed, metadata={"suppressed_customers_present": present, "erased_identifiers_present": hashed},
            description=None if passed else f"{present} suppressed customers and {hashed} erased identifiers remain in {table}",
        )

    return _check


golden_profile_has_no_suppressed_customers = _no_suppressed_check(
    GOLDEN, GOLDEN_PROFILE, "golden_profile_has_no_suppressed_customers")
customer_identifiers_has_no_suppressed_customers = _no_suppressed_check(
    IDENTIFIERS, CUSTOMER_IDENTIFIERS, "customer_identifiers_has_no_suppressed_customers", by_hash=True)
consent_has_no_suppressed_customers = _no_suppressed_check(
    CONSENT, consent_rules.CONSENT, "consent_has_no_suppressed_customers")


@dg.asset_check(asset=CONSENT, blocking=True,
                description="No customer is opted in on a channel where a more recent (or simultaneous) opt-out exists.")
def consent_opt_out_never_overridden(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        overridden = consent_rules.overridden_opt_outs(con)
    return dg.AssetCheckResult(
        passed=overridden == 0, metadata={"opt_ins_over_newer_opt_outs": overridden},
        description=None if overridden == 0 else f"{overridden} opt-ins stand although a newer opt-out exists",
    )


@dg.asset_check(asset=CONSENT, blocking=True,
                description="Every active customer has exactly one consent row per configured channel.")
def consent_row_per_customer_and_channel(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        customers, channels, rows, distinct = con.execute(
            f"""SELECT (SELECT count(DISTINCT customer_id) FROM {suppression.ACTIVE_XREF}),
                       (SELECT count(DISTINCT channel) FROM {consent_rules.CONSENT}),
                       (SELECT count(*) FROM {consent_rules.CONSENT}),
                       (SELECT count(*) FROM (SELECT DISTINCT customer_id, channel FROM {consent_rules.CONSENT}))"""
        ).fetchall()[0]
    passed = rows == distinct == customers * channels
    return dg.AssetCheckResult(
        passed=passed, metadata={"active_customers": customers, "channels": channels, "rows": rows},
        description=None if passed else f"{rows} consent rows for {customers} customers x {channels} channels",
    )


@dg.asset_check(asset=AUDIT, op_tags=BACKGROUND_STEP_TAGS,
                description="Requests applied on earlier runs are still on the erasure list.")
def erasure_requests_still_listed(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        dropped = suppression.requests_dropped_from_list(con)
    return dg.AssetCheckResult(
        passed=not dropped, severity=dg.AssetCheckSeverity.WARN, metadata={"dropped_requests": dg.MetadataValue.json(dropped)},
        description=None if not dropped else
        f"{len(dropped)} earlier erasure requests are no longer on the list; those people are back in the profiles",
    )
