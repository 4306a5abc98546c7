"""Product reviews on several platforms: verified purchases carry the order number."""

from __future__ import annotations

import random

from cdp_pipelines.synthetic.catalog import Order
from cdp_pipelines.synthetic.channels.cases import order_before
from cdp_pipelines.synthetic.people import Person
from cdp_pipelines.synthetic.randomness import Weighted, pick, poisson
from cdp_pipelines.synthetic.texts import ANGRY_REVIEW_BODIES, REVIEW_BODIES, REVIEW_TITLES
from cdp_pipelines.synthetic.world import World


class ReviewDesk:
    def __init__(self, world: World, r: random.Random):
        self.world, self.r, self.cfg = world, r, world.cfg["reviews"]
        self.platform = Weighted(self.cfg["platform_weights"])
        self.rating = Weighted({int(k): v for k, v in self.cfg["rating_weights"].items()})
        self.display = Weighted(self.cfg["display_name_weights"])

    def write(self, person: Person, ts: int, *, rating: int | None = None, order: Order | None = None,
              angry_contacts: int = 0) -> str:
        """Post one review; with no order and no e-mail a multi-channel person would be unlinkable, so add e-mail."""
        r = self.r
        rating = rating or self.rating(r)
        email = self.world.quality.email(r, person.email) if r.random() < self.cfg["email_rate"] else ""
        if order is None and not email and len(person.channels) > 1:
            email = self.world.quality.email(r, person.email)
        sku = order.skus[0] if order and order.skus else pick(r, self.world.catalog).sku
        fill = {"product": self.world.product_names[sku].lower(), "order": order.number if order else "my order",
                "n": max(angry_contacts, 3)}
        body = pick(r, ANGRY_REVIEW_BODIES if angry_contacts else REVIEW_BODIES[rating]).format(**fill)
        return self.world.tables["reviews"].add(
            person.person_id, platform=self.platform(r), display_name=self.display_name(person), email=email,
            sku=sku, rating=str(rating), title=pick(r, REVIEW_TITLES[rating]), body=body, created_at=ts,
            order_number=order.number if order else "",
        )

    def display_name(self, person: Person) -> str:
        first, last = person.first_name, person.last_name
        style = self.display(self.r)
        if style == "full":
            return self.world.quality.name(self.r, f"{first} {last}")
        if style == "first_initial":
            return f"{first} {last[0]}."
        if style == "initials":
            return f"{first[0]}. {last[0]}."
        return first


def add_background_reviews(world: World, people: list[Person]) -> None:
    r = world.stream("reviews")
    desk = ReviewDesk(world, r)
    for person in people:
        if "reviews" not in person.channels:
            continue
        for _ in range(max(1, poisson(r, desk.cfg["mean_reviews"]))):
            ts = world.moment(r)
            order = order_before(r, person, ts) if r.random() < desk.cfg["verified_rate"] else None
            desk.write(person, ts, order=order)
