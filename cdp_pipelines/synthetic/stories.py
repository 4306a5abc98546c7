"""Stories: multi-record situations the context tables must surface, each listed in stories.jsonl."""

from __future__ import annotations

from cdp_pipelines.synthetic.randomness import between, pick
from cdp_pipelines.synthetic.catalog import Order
from cdp_pipelines.synthetic.channels.cases import CaseDesk
from cdp_pipelines.synthetic.channels.pos import Till
from cdp_pipelines.synthetic.channels.reviews import ReviewDesk
from cdp_pipelines.synthetic.channels.social import SocialFeed
from cdp_pipelines.synthetic.channels.web import Session
from cdp_pipelines.synthetic.people import Person
from cdp_pipelines.synthetic.texts import REPEAT_NOTES
from cdp_pipelines.synthetic.world import DAY, World

HOUR = 3600
COMPLAINT_REASONS = ("delivery_delay", "refund_request", "damaged_item", "complaint")


class StoryTeller:
    def __init__(self, world: World, feed: SocialFeed):
        self.world, self.feed = world, feed
        self.r = world.stream("stories")
        self.rates = world.cfg["stories"]
        self.desk = CaseDesk(world, self.r)
        self.reviews = ReviewDesk(world, self.r)
        self.till = Till(world, self.r)

    def tell(self, people: list[Person]) -> None:
        r, rates = self.r, self.rates
        for person in people:
            registered = bool(person.web_user_id and person.crm_account_ids)
            if registered and r.random() < rates["cross_channel_journey"]:
                self.cross_channel_journey(person)
            if person.crm_account_ids and r.random() < rates["repeat_contacts"]:
                self.repeat_contacts(person)
            if person.crm_account_ids and r.random() < rates["unresolved_then_negative"]:
                self.unresolved_then_negative(person)
            shops_in_store = bool(person.loyalty_card) and "pos_transactions" in person.channels
            if shops_in_store and r.random() < rates["loyalty_store_purchases"]:
                self.loyalty_store_purchases(person)
            if registered and r.random() < rates["abandoned_cart"]:
                self.abandoned_cart(person)
            if person.orders and r.random() < rates["happy_reviewer"]:
                self.happy_reviewer(person)

    def _order(self, person: Person, latest: int) -> Order:
        """A recent order placed before `latest`, or a new phone order when there is none."""
        earlier = [o for o in person.orders if o.ts < latest]
        if earlier:
            return earlier[-1]
        w = self.world
        return w.orders.place(person.orders, w.moment(self.r, latest - 60 * DAY, latest), w.skus(self.r, 1))

    def cross_channel_journey(self, person: Person) -> None:
        """Browse and check out, chat about the order a few days later, then phone about it."""
        w, r = self.world, self.r
        cookie = person.cookies[0]
        shop = Session(w, r, person, cookie, w.moment(r, w.start_ts, w.end_ts - 8 * DAY))
        shop.browse()
        shop.login()
        skus = w.skus(r, 1)
        shop.browse()
        shop.add_to_cart(skus[0])
        order_number, _ = shop.checkout(skus)
        order = next(o for o in person.orders if o.number == order_number)
        help_visit = Session(w, r, person, cookie, w.later(shop.ts, r, DAY, 4 * DAY))
        help_visit.login()
        chat_event = help_visit.chat()
        reason = pick(r, ("delivery_delay", "damaged_item", "returns"))
        chat_case = self.desk.open(person, help_visit.ts, channel="chat", reason=reason, order=order,
                                   status="pending", account_id=person.crm_account_ids[0])
        phone_case = self.desk.open(person, w.later(help_visit.ts, r, 2 * HOUR, 48 * HOUR), channel="phone",
                                    reason=reason, order=order, status=pick(r, ("resolved", "closed")),
                                    account_id=person.crm_account_ids[0])
        w.story("cross_channel_journey", person.person_id, order_number=order_number,
                case_ids=[chat_case, phone_case], event_ids=shop.event_ids + help_visit.event_ids,
                chat_event_id=chat_event)

    def _complaint_cases(self, person: Person, count: int, final_status: str) -> tuple[Order, list[str], int]:
        """`count` contacts within 7 days about one order, none of them resolved."""
        w, r = self.world, self.r
        first = w.moment(r, w.start_ts + 60 * DAY, w.end_ts - 14 * DAY)
        order = self._order(person, first)
        reason = pick(r, COMPLAINT_REASONS)
        times = sorted([first] + [w.later(first, r, HOUR, 7 * DAY - HOUR) for _ in range(count - 1)])
        case_ids = []
        for number, ts in enumerate(times, start=1):
            note = pick(r, REPEAT_NOTES).format(order=order.number, n=number) if number > 1 else None
            status = final_status if number == count else pick(r, ("open", "pending"))
            case_ids.append(self.desk.open(person, ts, channel=pick(r, ("phone", "phone", "chat", "email")),
                                           reason=reason, order=order, status=status, note=note,
                                           account_id=person.crm_account_ids[0]))
        return order, case_ids, times[-1]

    def repeat_contacts(self, person: Person) -> None:
        count = between(self.r, 3, 6)
        order, case_ids, _ = self._complaint_cases(person, count, "open")
        self.world.story("repeat_contacts", person.person_id, order_number=order.number, case_ids=case_ids)

    def unresolved_then_negative(self, person: Person) -> None:
        """An unresolved case, then a 1-2 star review or an angry post within days."""
        w, r = self.world, self.r
        count = between(r, 1, 3)
        order, case_ids, last = self._complaint_cases(person, count, pick(r, ("open", "pending")))
        ts = w.later(last, r, 6 * HOUR, 5 * DAY)
        if person.handle and r.random() < 0.5:
            post_id = self.feed.post(person, ts, angry_order=order.number, contacts=count)
            w.story("unresolved_then_negative", person.person_id, order_number=order.number, case_ids=case_ids,
                    post_id=post_id)
            return
        review_id = self.reviews.write(person, ts, rating=pick(r, (1, 2)), order=order, angry_contacts=count)
        w.story("unresolved_then_negative", person.person_id, order_number=order.number, case_ids=case_ids,
                review_id=review_id)

    def loyalty_store_purchases(self, person: Person) -> None:
        w, r = self.world, self.r
        times = sorted(w.moment(r) for _ in range(between(r, 2, 5)))
        sales = [self.till.sell(person, ts, loyalty=True, receipt=(i == 0) or None) for i, ts in enumerate(times)]
        ids = self.till.record(person, sales)
        w.story("loyalty_store_purchases", person.person_id, loyalty_card=person.loyalty_card, transaction_ids=ids)

    def abandoned_cart(self, person: Person) -> None:
        w, r = self.world, self.r
        visit = Session(w, r, person, pick(r, person.cookies), w.moment(r))
        visit.browse()
        visit.login()
        sku = w.skus(r, 1)[0]
        visit.event("page_view", f"https://shop.example.co.uk/p/{sku.lower()}", sku=sku)
        visit.add_to_cart(sku)
        if r.random() < 0.5:
            visit.browse()
        w.story("abandoned_cart", person.person_id, session_id=visit.session_id, sku=sku, event_ids=visit.event_ids)

    def happy_reviewer(self, person: Person) -> None:
        w, r = self.world, self.r
        order = pick(r, person.orders)
        review_id = self.reviews.write(person, w.later(order.ts, r, 2 * DAY, 20 * DAY), rating=5, order=order)
        w.story("happy_reviewer", person.person_id, order_number=order.number, review_id=review_id)
