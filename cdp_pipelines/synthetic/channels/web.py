"""Web analytics events: sessions on a cookie, sometimes logged in, sometimes ending in an order."""

from __future__ import annotations

import random

from cdp_pipelines.synthetic.people import Person
from cdp_pipelines.synthetic.randomness import Weighted, pick, poisson
from cdp_pipelines.synthetic.texts import SEARCH_TERMS
from cdp_pipelines.synthetic.world import World

SITE = "https://shop.example.co.uk"


class Session:
    """One visit: events share a cookie and session id; `user_id` is set once the visitor logs in."""

    def __init__(self, world: World, r: random.Random, person: Person, cookie: str, ts: int):
        self.world, self.r, self.person, self.cookie, self.ts = world, r, person, cookie, ts
        self.session_id = f"s{r.getrandbits(56):014x}"
        self.user_id = ""
        self.event_ids: list[str] = []

    def event(self, event_type: str, url: str, *, sku: str | None = None, order_number: str | None = None,
              email: str | None = None, consent_email: str | None = None) -> str:
        event_id = self.world.tables["web_events"].add(
            self.person.person_id, cookie_id=self.cookie, user_id=self.user_id or None,
            session_id=self.session_id, ts=self.ts, event_type=event_type, url=url, sku=sku,
            order_number=order_number, email=email or None, consent_email=consent_email,
        )
        self.event_ids.append(event_id)
        self.ts = self.world.later(self.ts, self.r, 5, 240)
        return event_id

    def login(self) -> str:
        self.user_id = self.person.web_user_id
        typed = self._typed_email() if self.r.random() < 0.3 else None
        return self.event("login", f"{SITE}/account/login", email=typed)

    def browse(self) -> str:
        r = self.r
        if r.random() < 0.3:
            term = pick(r, SEARCH_TERMS)
            return self.event("search", f"{SITE}/search?q={term.replace(' ', '+')}")
        sku = pick(r, self.world.catalog).sku
        return self.event("page_view", f"{SITE}/p/{sku.lower()}", sku=sku)

    def add_to_cart(self, sku: str) -> str:
        return self.event("add_to_cart", f"{SITE}/basket/add", sku=sku)

    def newsletter(self) -> str:
        consent = None
        if self.r.random() < self.world.cfg["web"]["consent_on_form_rate"]:
            consent = "yes" if self.r.random() < 0.7 else "no"
        return self.event("form_submit", f"{SITE}/newsletter", email=self._typed_email(), consent_email=consent)

    def checkout(self, skus: list[str], *, always_email: bool = False) -> tuple[str, str]:
        order = self.world.orders.place(self.person.orders, self.ts, skus)
        wants_email = always_email or not self.user_id or self.r.random() < self.world.cfg["web"]["form_email_rate"]
        email = self._typed_email() if wants_email else None
        event_id = self.event("checkout", f"{SITE}/checkout/complete", sku=skus[0], order_number=order.number,
                              email=email)
        return order.number, event_id

    def chat(self) -> str:
        return self.event("chat_started", f"{SITE}/help/chat")

    def _typed_email(self) -> str:
        return self.world.quality.email(self.r, self.person.email)


def add_background_sessions(world: World, people: list[Person]) -> None:
    """Every web person gets sessions; each cookie is identified once (login or e-mail) unless anonymous."""
    r, web = world.stream("web_events"), world.cfg["web"]
    lengths = Weighted({int(k): v for k, v in web["session_event_weights"].items()})
    for person in people:
        if "web_events" not in person.channels:
            continue
        shared = person.cookies[-1] if person.shares_cookie else ""
        anonymous = {c for c in person.cookies if c != shared and r.random() < web["anonymous_cookie_rate"]}
        sessions = max(len(person.cookies), poisson(r, web["mean_sessions"]))
        for number in range(sessions):
            cookie = person.cookies[number] if number < len(person.cookies) else pick(r, person.cookies)
            # On a shared family computer every member signs in or types an e-mail each visit.
            first_on_cookie = number < len(person.cookies) or cookie == shared
            session = Session(world, r, person, cookie, world.moment(r))
            if person.web_user_id and cookie not in anonymous and (first_on_cookie or r.random() < web["login_rate"]):
                session.login()
            elif first_on_cookie and cookie not in anonymous:
                session.newsletter()
            for _ in range(lengths(r)):
                session.browse()
            if r.random() < web["checkout_rate"]:
                skus = world.skus(r, 1 + (r.random() < 0.3))
                for sku in skus:
                    session.add_to_cart(sku)
                session.checkout(skus)
