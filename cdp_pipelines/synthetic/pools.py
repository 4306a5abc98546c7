"""Value pools built once per run from faker's en_GB/en_IE/en_US providers and `nicknames`.

Calling faker per record is far too slow for a million records, so each run draws a few
thousand values up front and the channels sample from these pools.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import nicknames
from faker import Faker

from cdp_pipelines.synthetic.randomness import Weighted

LOCALES = {"GB": "en_GB", "IE": "en_IE", "US": "en_US"}
POSTCODE_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"


def ascii_letters(text: str) -> str:
    """Letters only, accents stripped: what a name turns into inside an e-mail or handle."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Za-z]", "", plain)


@dataclass
class Locality:
    city: str
    postcode_stem: str  # GB outward code, IE routing key, US state + zip prefix


@dataclass
class Pools:
    first_names: dict[tuple[str, str], Weighted[str]]
    last_names: dict[str, Weighted[str]]
    nicknames: dict[str, list[str]]
    streets: dict[str, list[str]]
    localities: dict[str, list[Locality]]
    unrelated_handles: list[str]
    agents: list[str]


def _weighted_names(names) -> Weighted[str]:
    if isinstance(names, dict):
        return Weighted({n: float(w) for n, w in names.items()})
    return Weighted(list(names))


def _nickname_map(first_names: set[str]) -> dict[str, list[str]]:
    namer = nicknames.NickNamer()
    result = {}
    for name in sorted(first_names):
        options = sorted(n for n in namer.nicknames_of(name) if n.isalpha() and len(n) > 2)
        if options:
            result[name] = [n.capitalize() for n in options]
    return result


def build_pools(seed: int, cfg: dict, persons: int) -> Pools:
    """Sample every pool with faker seeded from the run seed (sizes grow slowly with persons)."""
    fakers = {country: Faker(locale) for country, locale in LOCALES.items()}
    for offset, fake in enumerate(fakers.values()):
        fake.seed_instance(seed * 7 + offset)
    first_names, last_names, streets, localities = {}, {}, {}, {}
    all_first: set[str] = set()
    suffixes = cfg["population"]["uk_street_suffixes"]
    gb = fakers["GB"]
    for country, fake in fakers.items():
        person = fake.provider("faker.providers.person")
        for gender, attr in (("F", "first_names_female"), ("M", "first_names_male")):
            names = getattr(person, attr)
            first_names[(country, gender)] = _weighted_names(names)
            all_first.update(names)
        last_names[country] = _weighted_names(person.last_names)
        n_localities = 60 if country != "GB" else min(2000, max(200, persons // 40))
        if country == "GB":
            streets[country] = sorted({f"{gb.last_name()} {gb.random_element(suffixes)}" for _ in range(1500)})
            localities[country] = [Locality(gb.city(), gb.postcode().split()[0]) for _ in range(n_localities)]
        elif country == "IE":
            streets[country] = sorted({fake.street_name() for _ in range(300)})
            localities[country] = [Locality(fake.city(), fake.postcode()[:3]) for _ in range(n_localities)]
        else:
            streets[country] = sorted({fake.street_name() for _ in range(300)})
            localities[country] = [
                Locality(f"{fake.city()}, {fake.state_abbr()}", fake.zipcode()[:3]) for _ in range(n_localities)
            ]
    handle_count = min(40000, max(500, persons // 6))
    handles = sorted({gb.user_name() for _ in range(handle_count)})
    agents = sorted({f"{gb.first_name()} {gb.last_name()[0]}." for _ in range(cfg["cases"]["agent_pool_size"])})
    return Pools(first_names, last_names, _nickname_map(all_first), streets, localities, handles, agents)
