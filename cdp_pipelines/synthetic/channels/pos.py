"""Till transactions: loyalty scans, card tokens, e-receipts; cash buyers leave almost no trace."""

from __future__ import annotations

import random

import orjson

from cdp_pipelines.synthetic.people import Person
from cdp_pipelines.synthetic.randomness import Weighted, between, pick, poisson
from cdp_pipelines.synthetic.world import World

CURRENCY = {"GB": "GBP", "IE": "EUR", "US": "USD"}


class Till:
    """Draws transactions for one run; `sell` returns the dict of a not-yet-written transaction."""

    def __init__(self, world: World, r: random.Random):
        self.world, self.r, self.pos = world, r, world.cfg["pos"]
        self.items = Weighted({int(k): v for k, v in self.pos["items_weights"].items()})

    def sell(self, person: Person, ts: int, *, loyalty: bool | None = None, receipt: bool | None = None) -> dict:
        r, pos, q = self.r, self.pos, self.world.quality
        lines = []
        for sku in self.world.skus(r, self.items(r)):
            qty = 1 if r.random() < 0.8 else between(r, 2, 4)
            lines.append({"sku": sku, "qty": qty, "price": self.world.prices[sku]})
        total = sum(line["qty"] * line["price"] for line in lines)
        if loyalty is None:
            loyalty = bool(person.loyalty_card) and r.random() < pos["loyalty_scan_rate"]
        if receipt is None:
            receipt = r.random() < pos["receipt_email_rate"]
        card = pick(r, person.card_tokens) if r.random() < pos["card_payment_rate"] else ""
        name = ""
        if (card or loyalty) and r.random() < pos["customer_name_rate"]:
            name = self._name_on_record(person, from_card=bool(card) and not loyalty)
        return {
            "store_id": f"{person.country}{between(r, 1, pos['stores'][person.country] + 1):03d}",
            "ts": ts,
            "loyalty_card": person.loyalty_card if loyalty else "",
            "card_token": card,
            "receipt_email": q.email(r, person.email) if receipt else "",
            "phone": q.phone(r, person.mobile, person.country) if r.random() < pos["phone_rate"] else "",
            "customer_name": name,
            "total": f"{total:.2f}",
            "currency": CURRENCY[person.country],
            "line_items": orjson.dumps(lines).decode(),
        }

    def _name_on_record(self, person: Person, from_card: bool) -> str:
        """Card schemes print 'MR J SMITH'; the loyalty system shows the full name."""
        if from_card:
            prefix = f"{person.title.upper()} " if person.title and self.r.random() < 0.4 else ""
            return f"{prefix}{person.first_name[0]} {person.last_name}".upper()
        return self.world.quality.name(self.r, f"{person.first_name} {person.last_name}")

    def record(self, person: Person, transactions: list[dict]) -> list[str]:
        """Write a person's transactions, first making sure a multi-channel person stays linkable."""
        if len(person.channels) > 1:
            _ensure_linkable(transactions, person, self)
        table = self.world.tables["pos_transactions"]
        return [table.add(person.person_id, **t) for t in transactions]


def _ensure_linkable(transactions: list[dict], person: Person, till: Till) -> None:
    """Give a multi-channel person's anonymous purchases an e-receipt, except for a small untraceable share.

    Card tokens are not part of the identity vocabulary, so only loyalty, e-mail or phone count.
    """
    untraceable = till.pos["untraceable_rate"]
    for t in transactions:
        if t["loyalty_card"] or t["receipt_email"] or t["phone"] or till.r.random() < untraceable:
            continue
        t["receipt_email"] = till.world.quality.email(till.r, person.email)


def add_background_transactions(world: World, people: list[Person]) -> None:
    r = world.stream("pos_transactions")
    till = Till(world, r)
    for person in people:
        if "pos_transactions" not in person.channels:
            continue
        count = max(1, poisson(r, world.cfg["pos"]["mean_transactions"]))
        till.record(person, [till.sell(person, world.moment(r)) for _ in range(count)])
