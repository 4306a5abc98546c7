"""How values get damaged on their way into each system: typos, nicknames, formats, junk.

Every function takes the channel's random stream so damage is reproducible; all rates come from
the `quality` section of config/generator.yaml via `Quality`.
"""

from __future__ import annotations

import random
from datetime import date

from cdp_pipelines.synthetic.randomness import Weighted

KEYBOARD_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")
STREET_ABBREVIATIONS = {"Road": "Rd", "Street": "St", "Avenue": "Ave", "Lane": "Ln", "Drive": "Dr",
                        "Close": "Cl", "Crescent": "Cres", "Gardens": "Gdns", "Place": "Pl", "Terrace": "Ter"}
CALLING_CODES = {"GB": "44", "IE": "353", "US": "1"}


def _adjacent_keys() -> dict[str, str]:
    """Neighbours on a QWERTY keyboard (same row and the rows above and below)."""
    position = {ch: (row, col) for row, keys in enumerate(KEYBOARD_ROWS) for col, ch in enumerate(keys)}
    neighbours = {}
    for ch, (row, col) in position.items():
        near = [
            other for other, (orow, ocol) in position.items()
            if other != ch and abs(orow - row) <= 1 and abs(ocol - col) <= 1
        ]
        neighbours[ch] = "".join(sorted(near))
    return neighbours


ADJACENT = _adjacent_keys()


def typo(r: random.Random, text: str) -> str:
    """One keying error: an adjacent key, a transposition, a dropped or a doubled letter."""
    if len(text) < 3:
        return text
    i = r.randrange(1, len(text) - 1)
    kind = r.randrange(4)
    if kind == 0 and text[i].lower() in ADJACENT:
        replacement = r.choice(ADJACENT[text[i].lower()])
        return text[:i] + (replacement.upper() if text[i].isupper() else replacement) + text[i + 1:]
    if kind == 1 and text[i] != text[i + 1]:
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    if kind == 2:
        return text[:i] + text[i + 1:]
    return text[:i] + text[i] + text[i:]


class Quality:
    """The data-quality rates of one run, with the weighted choosers built once."""

    def __init__(self, cfg: dict, nicknames: dict[str, list[str]]):
        q = self.rates = cfg["quality"]
        self.nicknames = nicknames
        self.name_case = Weighted(q["name_case_weights"])
        self.phone_format = Weighted(q["phone_format_weights"])
        self.postcode_format = Weighted(q["postcode_format_weights"])
        self.country = {c: Weighted(w) for c, w in q["country_variants"].items()}
        self.junk = {kind: Weighted(values) for kind, values in q["junk_values"].items()}

    def name(self, r: random.Random, name: str, *, first: bool = False, nickname_rate: float | None = None) -> str:
        """A name as typed by a person or an agent: maybe a nickname, a typo, odd casing or junk."""
        q = self.rates
        if r.random() < q["junk_name_rate"]:
            return self.junk["name"](r)
        rate = q["nickname_rate"] if nickname_rate is None else nickname_rate
        if first and name in self.nicknames and r.random() < rate:
            name = r.choice(self.nicknames[name])
        if r.random() < q["name_typo_rate"]:
            name = typo(r, name)
        case = self.name_case(r)
        return name.upper() if case == "upper" else name.lower() if case == "lower" else name

    def email(self, r: random.Random, email: str, *, missing_rate: float = 0.0) -> str:
        """An e-mail as entered: junk, missing, case changes, gmail dots/+tags, a typo."""
        q = self.rates
        if r.random() < q["junk_email_rate"]:
            return self.junk["email"](r)
        if r.random() < missing_rate:
            return ""
        local, _, domain = email.partition("@")
        if domain == "gmail.com":
            if r.random() < q["gmail_dot_rate"]:
                local = local.replace(".", "") if "." in local else local[:2] + "." + local[2:]
            if r.random() < q["gmail_plus_rate"]:
                local = f"{local}+{r.choice(['shop', 'offers', 'news', 'uk'])}"
        if r.random() < q["email_typo_rate"]:
            local = typo(r, local)
        if r.random() < q["email_case_rate"]:
            local = local.title() if r.random() < 0.7 else local.upper()
            domain = domain.capitalize()
        return f"{local}@{domain}"

    def phone(self, r: random.Random, digits: str, country: str, *, missing_rate: float = 0.0) -> str:
        """A phone number in one of the formats people write, or junk, or nothing."""
        if r.random() < self.rates["junk_phone_rate"]:
            return self.junk["phone"](r)
        if not digits or r.random() < missing_rate:
            return ""
        return format_phone(digits, country, self.phone_format(r))

    def postcode(self, r: random.Random, postcode: str) -> str:
        style = self.postcode_format(r)
        if style == "upper_nospace":
            return postcode.replace(" ", "")
        if style == "lower_nospace":
            return postcode.replace(" ", "").lower()
        if style == "lower_space":
            return postcode.lower()
        return postcode

    def street(self, r: random.Random, line: str) -> str:
        if r.random() < self.rates["street_abbreviation_rate"]:
            head, _, last = line.rpartition(" ")
            if last in STREET_ABBREVIATIONS:
                return f"{head} {STREET_ABBREVIATIONS[last]}"
        if r.random() < self.rates["name_typo_rate"]:
            return typo(r, line)
        return line

    def country_text(self, r: random.Random, country: str) -> str:
        return self.country[country](r)

    def date_of_birth(self, r: random.Random, dob: date) -> str:
        """ISO mostly; sometimes DD/MM/YYYY, missing, or an impossible day such as 30 February."""
        q = self.rates
        roll = r.random()
        if roll < q["dob_missing_rate"]:
            return ""
        roll -= q["dob_missing_rate"]
        if roll < q["dob_impossible_rate"]:
            return f"{dob.year}-02-{r.choice([30, 31])}" if r.random() < 0.6 else f"{dob.year}-{dob.month:02d}-32"
        roll -= q["dob_impossible_rate"]
        if roll < q["dob_alt_format_rate"]:
            return f"{dob.day:02d}/{dob.month:02d}/{dob.year}"
        return dob.isoformat()


def format_phone(digits: str, country: str, style: str) -> str:
    """Render a national significant number in the style named by its example in the config."""
    code = CALLING_CODES[country]
    if country == "US":
        area, exchange, line = digits[:3], digits[3:6], digits[6:]
        return {
            "07700900123": f"{area}{exchange}{line}",
            "07700 900123": f"({area}) {exchange}-{line}",
            "07700-900-123": f"{area}-{exchange}-{line}",
            "+447700900123": f"+1{digits}",
        }.get(style, f"+1 {area} {exchange} {line}")
    if country == "IE":
        split = 1 if digits.startswith("1") else 2
    elif digits.startswith("20"):
        split = 2
    elif digits.startswith("1") and "1" in digits[1:3]:
        split = 3  # 0121, 0113 style area codes
    else:
        split = 4
    head, tail = digits[:split], digits[split:]
    return {
        "+44 7700 900123": f"+{code} {head} {tail}",
        "07700900123": f"0{digits}",
        "07700 900123": f"0{head} {tail}",
        "07700-900-123": f"0{head}-{tail[:3]}-{tail[3:]}",
        "+44 (0)7700 900123": f"+{code} (0){head} {tail}",
        "+447700900123": f"+{code}{digits}",
        "0044 7700 900123": f"00{code} {head} {tail}",
    }[style]
