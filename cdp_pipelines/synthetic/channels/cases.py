"""Customer-service cases against CRM accounts, often about an order."""

from __future__ import annotations

import random

from cdp_pipelines.synthetic.catalog import Order
from cdp_pipelines.synthetic.people import Person
from cdp_pipelines.synthetic.randomness import Weighted, between, pick, poisson
from cdp_pipelines.synthetic.texts import CASE_NOTES
from cdp_pipelines.synthetic.world import DAY, World

UNRESOLVED = ("open", "pending")


class CaseDesk:
    """Opens cases with plausible handling times, notes and closing dates."""

    def __init__(self, world: World, r: random.Random):
        self.world, self.r, self.cfg = world, r, world.cfg["cases"]
        self.channel = Weighted(self.cfg["channel_weights"])
        self.reason = Weighted(self.cfg["reason_weights"])
        self.status = Weighted(self.cfg["status_weights"])

    def open(self, person: Person, opened: int, *, channel: str | None = None, reason: str | None = None,
             order: Order | None = None, status: str | None = None, note: str | None = None,
             account_id: str | None = None) -> str:
        r, cfg = self.r, self.cfg
        channel = channel or self.channel(r)
        reason = reason or self.reason(r)
        status = status or self.status(r)
        low, high = cfg["handle_seconds"][channel]
        handle_seconds = between(r, low, high)
        closed = None if status in UNRESOLVED else self.world.later(opened, r, handle_seconds, 10 * DAY)
        if account_id is None:
            account_id = person.crm_account_ids[0] if r.random() < 0.9 else pick(r, person.crm_account_ids)
            if order is not None and r.random() < cfg["account_missing_rate"]:
                account_id = ""
        if note is None and r.random() < cfg["note_rate"]:
            note = self.note(reason, order)
        return self.world.tables["crm_cases"].add(
            person.person_id, account_id=account_id, opened_at=opened, closed_at=closed, channel=channel,
            reason=reason, order_number=order.number if order else "", status=status,
            agent=pick(r, self.world.pools.agents), handle_seconds=str(handle_seconds), note=note or "",
        )

    def note(self, reason: str, order: Order | None) -> str:
        r = self.r
        template = pick(r, CASE_NOTES[reason])
        return template.format(
            order=order.number if order else "the order", day=pick(r, ["Monday", "Tuesday", "Friday"]),
            store=f"{between(r, 1, 90):03d}", sku=order.skus[0] if order and order.skus else "the item",
        )


def order_before(r: random.Random, person: Person, ts: int) -> Order | None:
    """One of the person's orders placed before `ts`, preferring recent ones."""
    earlier = [o for o in person.orders if o.ts < ts]
    return earlier[-1 - min(len(earlier) - 1, int(r.expovariate(1.0)))] if earlier else None


def add_background_cases(world: World, people: list[Person]) -> None:
    r = world.stream("crm_cases")
    desk = CaseDesk(world, r)
    for person in people:
        if not person.crm_account_ids:
            continue
        for _ in range(poisson(r, world.cfg["cases"]["mean_background_cases"])):
            opened = world.moment(r)
            order = order_before(r, person, opened) if r.random() < world.cfg["cases"]["order_number_rate"] else None
            desk.open(person, opened, order=order)
