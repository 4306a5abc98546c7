"""The person population: who exists, where they live, how they are reachable, which channels they use.

Households, twins, maiden names, moves and common names are decided here, once per person, so
every channel tells a consistent story about the same people.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from cdp_pipelines.synthetic.catalog import Order
from cdp_pipelines.synthetic.pools import POSTCODE_INWARD_LETTERS, Pools, ascii_letters
from cdp_pipelines.synthetic.randomness import IdMint, Weighted, below, between, pick, stream

@dataclass(slots=True)
class Address:
    line1: str
    line2: str
    city: str
    postcode: str
    country: str


@dataclass(slots=True)
class Person:
    index: int
    person_id: str
    country: str
    gender: str
    first_name: str
    last_name: str
    dob: date
    household: int
    address: Address
    maiden_name: str = ""
    previous_address: Address | None = None
    email: str = ""
    old_email: str = ""
    mobile: str = ""  # national significant number, digits only
    landline: str = ""
    title: str = ""
    segment: str = ""
    channels: frozenset[str] = frozenset()
    loyalty_card: str = ""
    web_user_id: str = ""
    handle: str = ""
    shares_cookie: bool = False  # the last cookie is the household's shared one
    cookies: list[str] = field(default_factory=list)
    card_tokens: list[str] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    crm_account_ids: list[str] = field(default_factory=list)


class _Builder:
    """Holds the per-run pools and uniqueness sets while the population is drawn."""

    def __init__(self, seed: int, cfg: dict, pools: Pools):
        self.r = stream(seed, "people")
        self.cfg, self.pop, self.pools = cfg, cfg["population"], pools
        self.country = Weighted(self.pop["country_weights"])
        self.household_size = Weighted({int(k): v for k, v in self.pop["household_size_weights"].items()})
        self.email_pattern = Weighted(self.pop["email_pattern_weights"])
        self.domains = {c: Weighted(w) for c, w in self.pop["email_domains"].items()}
        self.segment = Weighted({name: s["weight"] for name, s in cfg["segments"].items()})
        self.reference = date.fromisoformat(cfg["reference_date"])
        self.used_emails: set[str] = set()
        self.used_phones: set[str] = set()
        self.used_handles: set[str] = set()
        self.web_ids = IdMint("W", 7, seed)
        self.loyalty_ids = IdMint("LC", 10, seed)
        self.cookie_count = Weighted({int(k): v for k, v in cfg["web"]["cookies_per_person_weights"].items()})
        self.card_count = Weighted({int(k): v for k, v in cfg["pos"]["cards_per_person_weights"].items()})

    def address(self, country: str) -> Address:
        r = self.r
        locality = pick(r, self.pools.localities[country])
        if country == "GB":
            digit = below(r, 10)
            letters = pick(r, POSTCODE_INWARD_LETTERS) + pick(r, POSTCODE_INWARD_LETTERS)
            postcode = f"{locality.postcode_stem} {digit}{letters}"
        elif country == "IE":
            postcode = f"{locality.postcode_stem} {pick(r, 'ACDEFHKNPRTVWXY')}{between(r, 100, 999)}"
        else:
            postcode = f"{locality.postcode_stem}{between(r, 10, 99)}"
        line2 = ""
        if r.random() < self.pop["address_line2_rate"]:
            line2 = f"{pick(r, ['Flat', 'Apartment', 'Unit'])} {between(r, 1, 40)}"
        line1 = f"{between(r, 1, 240)} {pick(r, self.pools.streets[country])}"
        return Address(line1, line2, locality.city, postcode, country)

    def first_name(self, country: str, gender: str, avoid: str = "") -> str:
        while True:
            name = self.pools.first_names[(country, gender)](self.r)
            if name != avoid:
                return name

    def phone(self, prefixes: list[str], country: str) -> str:
        length = {"GB": 10, "IE": 9, "US": 10}[country]
        while True:
            prefix = pick(self.r, prefixes)
            width = length - len(prefix)
            digits = prefix + str(below(self.r, 10**width)).zfill(width)
            if digits not in self.used_phones:
                self.used_phones.add(digits)
                return digits

    def email(self, first: str, last: str, dob: date, country: str, domain: str | None = None) -> str:
        first_a, last_a = ascii_letters(first).lower() or "x", ascii_letters(last).lower() or "x"
        local = self.email_pattern(self.r).format(
            first=first_a, last=last_a, f=first_a[0], nn=between(self.r, 1, 99), yy=f"{dob.year % 100:02d}"
        )
        domain = domain or self.domains[country](self.r)
        candidate = f"{local}@{domain}"
        while self.mailbox(candidate) in self.used_emails:
            candidate = f"{local}{between(self.r, 1, 999)}@{domain}"
        self.used_emails.add(self.mailbox(candidate))
        return candidate

    def mailbox(self, email: str) -> str:
        """The mailbox an address delivers to: providers that ignore dots in the local part
        (george.lewis@ and georgelewis@gmail.com are one inbox) never give it to two people."""
        local, _, domain = email.partition("@")
        if domain in self.pop["mailbox_ignores_dots"]:
            local = local.replace(".", "")
        return f"{local}@{domain}"

    def handle(self, person: Person) -> str:
        r = self.r
        if r.random() < self.cfg["social"]["handle_from_name_rate"]:
            first, last = ascii_letters(person.first_name).lower(), ascii_letters(person.last_name).lower()
            base = pick(r, [f"{first[0]}{last}", f"{first}_{last}", f"{first}{last[:1]}", f"{first}.{last}"])
        else:
            base = pick(r, self.pools.unrelated_handles)
        candidate = base
        while candidate in self.used_handles:
            candidate = f"{base}{between(r, 1, 9999)}"
        self.used_handles.add(candidate)
        return candidate

    def title(self, gender: str, married: bool) -> str:
        r = self.r
        if r.random() < 0.03:
            return "Dr"
        if gender == "M":
            return "Mr"
        return "Mrs" if married else pick(r, ["Ms", "Miss", "Ms"])


def _household_start_probability(share: float, mean_size: float) -> float:
    """Chance a walk over persons starts a household, so that `share` of persons end up in one."""
    return share / (mean_size - share * mean_size + share)


def build_population(persons: int, seed: int, cfg: dict, pools: Pools) -> list[Person]:
    """Draw households first (shared address, surname, landline, e-mail), then the individuals."""
    b, pop = _Builder(seed, cfg, pools), cfg["population"]
    r = b.r
    sizes = pop["household_size_weights"]
    mean_size = sum(int(k) * v for k, v in sizes.items()) / sum(sizes.values())
    start = _household_start_probability(pop["household_share"], mean_size)
    people: list[Person] = []
    household = 0
    while len(people) < persons:
        size = b.household_size(r) if r.random() < start else 1
        size = min(size, persons - len(people))
        _add_household(b, people, household, size)
        household += 1
    for person in people:
        _assign_channels(b, person)
    return people


def _birth_date(b: _Builder) -> date:
    pop = b.pop
    age_days = between(b.r, pop["age_min"] * 365, pop["age_max"] * 365)
    return b.reference - timedelta(days=age_days)


def _add_household(b: _Builder, people: list[Person], household: int, size: int) -> None:
    r, pop = b.r, b.pop
    country = b.country(r)
    home = b.address(country)
    previous = b.address(country) if r.random() < pop["moved_rate"] else None
    shared_surname = size > 1 and r.random() < pop["household_shares_surname"]
    landline_prob = pop["household_shares_landline"] if size > 1 else pop["landline_rate"]
    landline = b.phone(pop["landline_prefixes"][country], country) if r.random() < landline_prob else ""
    twins = size > 1 and r.random() < pop["twins_rate"]
    common = r.random() < pop["common_name_rate"]
    family_name = pick(r, pop["common_last_names"]) if common else b.pools.last_names[country](r)
    members: list[Person] = []
    for position in range(size):
        gender = "F" if r.random() < pop["female_share"] else "M"
        if twins and position == 1:
            dob, gender = members[0].dob, pick(r, "FM")
        else:
            dob = _birth_date(b)
        if common and position == 0:
            first = pick(r, pop["common_first_names"][gender])
        else:
            first = b.first_name(country, gender, avoid=members[0].first_name if members else "")
        keeps_family_name = position == 0 or shared_surname or (twins and position == 1)
        last = family_name if keeps_family_name else b.pools.last_names[country](r)
        index = len(people)
        person = Person(index, f"P{index + 1:07d}", country, gender, first, last, dob, household, home)
        person.previous_address = previous
        married = size > 1 and shared_surname and gender == "F" and position > 0
        if gender == "F" and (married or r.random() < pop["surname_change_rate"]):
            if married or r.random() < 0.5:
                person.maiden_name = b.pools.last_names[country](r)
        person.title = b.title(gender, bool(person.maiden_name))
        person.mobile = b.phone(pop["mobile_prefixes"][country], country)
        person.landline = landline
        name_for_email = person.maiden_name or last
        if person.maiden_name or r.random() < pop["email_provider_change_rate"]:
            person.old_email = b.email(first, name_for_email, dob, country)
        person.email = b.email(first, last, dob, country)
        members.append(person)
        people.append(person)
    if size > 1 and r.random() < pop["household_shares_email"]:
        for member in members[1:]:
            member.email = members[0].email
    shared_cookie = f"{r.getrandbits(64):016x}" if size > 1 and r.random() < pop["household_shares_cookie"] else ""
    for member in members:
        member.cookies = [f"{r.getrandbits(64):016x}" for _ in range(b.cookie_count(r))]
        if shared_cookie:
            member.cookies.append(shared_cookie)
            member.shares_cookie = True


def _assign_channels(b: _Builder, person: Person) -> None:
    r, cfg = b.r, b.cfg
    person.segment = b.segment(r)
    odds = cfg["segments"][person.segment]["channels"]
    person.channels = frozenset(c for c in odds if r.random() < odds[c])
    if not person.channels:
        person.channels = frozenset([max(odds, key=odds.get)])
    crm = "crm_accounts" in person.channels
    if crm and r.random() < cfg["crm"]["loyalty_member_rate"]:
        person.loyalty_card = b.loyalty_ids()
    if crm and "web_events" in person.channels and r.random() < cfg["crm"]["web_registered_rate"]:
        person.web_user_id = b.web_ids()
    if "social_posts" in person.channels:
        person.handle = b.handle(person)
    person.card_tokens = [f"tok_{r.getrandbits(48):012x}" for _ in range(b.card_count(r))]
