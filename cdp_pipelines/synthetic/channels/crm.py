"""CRM accounts: one per customer, sometimes a forgotten older duplicate with stale details."""

from __future__ import annotations

import random

from cdp_pipelines.synthetic.people import Person
from cdp_pipelines.synthetic.randomness import Weighted, between
from cdp_pipelines.synthetic.world import DAY, World

YEAR = 365 * DAY


def add_accounts(world: World, people: list[Person]) -> None:
    """Create accounts; the current one is first in `person.crm_account_ids`."""
    r, crm = world.stream("crm_accounts"), world.cfg["crm"]
    history_start = world.end_ts - world.cfg["crm_history_days"] * DAY
    gap_low, gap_high = crm["duplicate_gap_years"]
    consent = Weighted(crm["consent_weights"])
    phone_source = Weighted(crm["phone_source_weights"])
    for person in people:
        if "crm_accounts" not in person.channels:
            continue
        created = world.moment(r, history_start, world.end_ts - 30 * DAY)
        old_created = None
        if r.random() < crm["duplicate_account_rate"]:
            gap = between(r, gap_low * YEAR, gap_high * YEAR)
            old_created = created - gap
        person.crm_account_ids.append(_add_account(world, r, person, created, False, consent, phone_source))
        if old_created is not None:
            person.crm_account_ids.append(_add_account(world, r, person, old_created, True, consent, phone_source))


def _add_account(world: World, r: random.Random, person: Person, created: int, old: bool,
                 consent: Weighted, phone_source: Weighted) -> str:
    q, rates, crm = world.quality, world.cfg["quality"], world.cfg["crm"]
    updated = world.later(created, r, 0, world.end_ts - created)
    last_name = person.maiden_name if old and person.maiden_name else person.last_name
    email = person.old_email if old and person.old_email else person.email
    address = person.previous_address if old and person.previous_address else person.address
    if old and r.random() > crm["duplicate_keeps_mobile"]:
        phone_digits = person.landline
    else:
        source = phone_source(r)
        phone_digits = person.mobile if source == "mobile" else person.landline if source == "landline" else ""
    title = "" if r.random() < crm["title_missing"] else person.title
    if old and person.maiden_name and title == "Mrs":
        title = "Miss"
    email_consent, sms_consent = consent(r), consent(r)
    consent_at = world.later(created, r, 0, updated - created + 1) if (email_consent or sms_consent) else None
    no_address = r.random() < rates["address_missing_rate"]
    handle = ""
    if person.handle and not old and r.random() < crm["social_handle_recorded"]:
        handle = person.handle if r.random() < 0.5 else f"@{person.handle}"
    web_user_id = ""
    if person.web_user_id and not old and r.random() >= crm["web_user_id_missing"]:
        web_user_id = person.web_user_id
    return world.tables["crm_accounts"].add(
        person.person_id,
        title=title,
        first_name=q.name(r, person.first_name, first=True),
        last_name=q.name(r, last_name),
        email=q.email(r, email, missing_rate=rates["email_missing_rate"]),
        phone=q.phone(r, phone_digits, person.country, missing_rate=rates["phone_missing_rate"]),
        date_of_birth=q.date_of_birth(r, person.dob),
        address_line1="" if no_address else q.street(r, address.line1),
        address_line2="" if no_address else address.line2,
        city="" if no_address else address.city,
        postcode="" if no_address else q.postcode(r, address.postcode),
        country=q.country_text(r, address.country),
        created_at=created,
        updated_at=updated,
        email_consent=email_consent,
        sms_consent=sms_consent,
        consent_updated_at=consent_at,
        loyalty_card="" if old else person.loyalty_card,
        web_user_id=web_user_id,
        social_handle=handle,
    )
