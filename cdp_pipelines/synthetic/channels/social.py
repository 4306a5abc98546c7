"""Public social posts mentioning the brand, by handle; some continue the author's earlier thread."""

from __future__ import annotations

import random

from cdp_pipelines.synthetic.people import Person
from cdp_pipelines.synthetic.randomness import Weighted, pick, poisson
from cdp_pipelines.synthetic.texts import ANGRY_SOCIAL_POSTS, SOCIAL_POSTS
from cdp_pipelines.synthetic.world import World


class SocialFeed:
    def __init__(self, world: World, r: random.Random):
        self.world, self.r, self.cfg = world, r, world.cfg["social"]
        self.platform = Weighted(self.cfg["platform_weights"])
        self.last_post: dict[str, tuple[str, str, int]] = {}  # person -> (post id, platform, ts)

    def post(self, person: Person, ts: int, *, angry_order: str | None = None, contacts: int = 3) -> str:
        r, cfg = self.r, self.cfg
        previous = self.last_post.get(person.person_id)
        reply_to, platform = "", self.platform(r)
        if previous and previous[2] < ts and r.random() < cfg["reply_rate"]:
            reply_to, platform = previous[0], previous[1]
        sku = pick(r, self.world.catalog).sku
        if angry_order is not None:
            text = pick(r, ANGRY_SOCIAL_POSTS).format(order=angry_order, n=contacts)
        else:
            text = pick(r, SOCIAL_POSTS).format(product=self.world.product_names[sku].lower())
        display = ""
        if r.random() < cfg["display_name_rate"]:
            display = person.first_name if r.random() < 0.3 else f"{person.first_name} {person.last_name}"
        location = ""
        if r.random() < cfg["location_rate"]:
            city = person.address.city
            location = city if r.random() < 0.6 else {"GB": f"{city}, UK", "IE": f"{city}, Ireland"}.get(
                person.country, city)
        post_id = self.world.tables["social_posts"].add(
            person.person_id, platform=platform, handle=f"@{person.handle}", display_name=display or None,
            location=location or None, text=text, ts=ts, in_reply_to=reply_to or None,
        )
        self.last_post[person.person_id] = (post_id, platform, ts)
        return post_id


def add_background_posts(world: World, people: list[Person], feed: SocialFeed) -> None:
    r = feed.r
    for person in people:
        if "social_posts" not in person.channels:
            continue
        count = max(1, poisson(r, feed.cfg["mean_posts"]))
        for ts in sorted(world.moment(r) for _ in range(count)):
            feed.post(person, ts)
