"""Profiles stage: erasure, active xref, golden profiles, identifiers, consent and their checks."""

from cdp_pipelines.profiles.assets import (  # noqa: F401  (collected by the defs loader)
    active_xref,
    consent,
    customer_identifiers,
    erasure_requests_applied,
    golden_profile,
)
from cdp_pipelines.profiles.checks import (  # noqa: F401
    consent_has_no_suppressed_customers,
    consent_opt_out_never_overridden,
    consent_row_per_customer_and_channel,
    customer_identifiers_has_no_suppressed_customers,
    erasure_requests_still_listed,
    golden_profile_covers_active_customers,
    golden_profile_has_no_suppressed_customers,
    golden_profile_unique_customer,
)
