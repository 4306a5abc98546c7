"""The synthetic data generator: determinism, the committed sample, ground truth, rates and stories."""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import pytest

from cdp_pipelines.settings import PROJECT_ROOT
from cdp_pipelines.synthetic import DEFAULT_SEED, generate_dataset
from cdp_pipelines.synthetic.config import load_config
from cdp_pipelines.synthetic.corruptions import Quality
from cdp_pipelines.synthetic.people import build_population
from cdp_pipelines.synthetic.pools import build_pools

CONFIG = PROJECT_ROOT / "config" / "generator.yaml"
SAMPLE = PROJECT_ROOT / "data" / "sample"
SOURCES = {
    "crm_accounts": ("crm_accounts.csv", "account_id"),
    "crm_cases": ("crm_cases.csv", "case_id"),
    "web_events": ("web_events.jsonl", "event_id"),
    "pos_transactions": ("pos_transactions.csv", "transaction_id"),
    "reviews": ("reviews.csv", "review_id"),
    "social_posts": ("social_posts.jsonl", "post_id"),
}
COLUMNS = {
    "crm_accounts": "account_id,title,first_name,last_name,email,phone,date_of_birth,address_line1,address_line2,"
    "city,postcode,country,created_at,updated_at,email_consent,sms_consent,consent_updated_at,loyalty_card,"
    "web_user_id,social_handle",
    "crm_cases": "case_id,account_id,opened_at,closed_at,channel,reason,order_number,status,agent,handle_seconds,note",
    "web_events": "event_id,cookie_id,user_id,session_id,ts,event_type,url,sku,order_number,email,consent_email",
    "pos_transactions": "transaction_id,store_id,ts,loyalty_card,card_token,receipt_email,phone,customer_name,total,"
    "currency,line_items",
    "reviews": "review_id,platform,display_name,email,sku,rating,title,body,created_at,order_number",
    "social_posts": "post_id,platform,handle,display_name,location,text,ts,in_reply_to",
}
MID_PERSONS = 6000


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _read(folder: Path, source: str) -> list[dict]:
    file_name, _ = SOURCES[source]
    path = folder / file_name
    if file_name.endswith(".jsonl"):
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def mid(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synthetic_mid")
    summary = generate_dataset(MID_PERSONS, 11, out, config_path=CONFIG)
    tables = {source: _read(out, source) for source in SOURCES}
    return out, {"summary": summary, "tables": tables}


@pytest.fixture(scope="module")
def truth(mid) -> dict[tuple[str, str], str]:
    out, _ = mid
    with open(out / "ground_truth.csv", encoding="utf-8", newline="") as handle:
        return {(row["source"], row["source_record_id"]): row["person_id"] for row in csv.DictReader(handle)}


def test_same_seed_same_bytes_different_seed_different(tmp_path):
    first = generate_dataset(300, 7, tmp_path / "a", config_path=CONFIG)
    generate_dataset(300, 7, tmp_path / "b", config_path=CONFIG)
    generate_dataset(300, 8, tmp_path / "c", config_path=CONFIG)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    different = _digests(tmp_path / "c")
    assert all(different[name] != digest for name, digest in _digests(tmp_path / "a").items())
    assert set(first.files) == set(SOURCES) and first.total_records == sum(first.counts.values())


def test_output_does_not_depend_on_the_process_hash_seed(tmp_path):
    generate_dataset(200, 5, tmp_path / "here", config_path=CONFIG)
    script = (
        "import sys; from pathlib import Path; from cdp_pipelines.synthetic import generate_dataset; "
        "generate_dataset(200, 5, Path(sys.argv[1]), config_path=Path(sys.argv[2]))"
    )
    env = {"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "there"), str(CONFIG)], check=True, env=env,
                   cwd=PROJECT_ROOT)
    assert _digests(tmp_path / "here") == _digests(tmp_path / "there")


def test_committed_sample_is_exactly_a_fresh_generation(tmp_path):
    generate_dataset(2000, DEFAULT_SEED, tmp_path, config_path=CONFIG)
    assert _digests(SAMPLE) == _digests(tmp_path)


def test_truth_out_elsewhere_keeps_stories_beside_it(tmp_path):
    summary = generate_dataset(50, 3, tmp_path / "data", truth_out=tmp_path / "truth" / "gt.csv", config_path=CONFIG)
    assert summary.ground_truth == tmp_path / "truth" / "gt.csv" and summary.ground_truth.exists()
    assert (tmp_path / "truth" / "stories.jsonl").exists()
    assert not (tmp_path / "data" / "ground_truth.csv").exists()


def test_columns_are_exactly_the_contract(mid):
    out, _ = mid
    for source, (file_name, _) in SOURCES.items():
        path = out / file_name
        if file_name.endswith(".jsonl"):
            keys = list(json.loads(path.read_text(encoding="utf-8").splitlines()[0]))
        else:
            keys = path.read_text(encoding="utf-8").splitlines()[0].split(",")
        assert keys == COLUMNS[source].split(","), source


def test_ground_truth_covers_every_record_once_and_ids_are_unique(mid):
    out, data = mid
    with open(out / "ground_truth.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    keys = Counter((row["source"], row["source_record_id"]) for row in rows)
    assert max(keys.values()) == 1
    for source, (_, id_column) in SOURCES.items():
        ids = [record[id_column] for record in data["tables"][source]]
        assert len(ids) == len(set(ids)), source
        assert {i for s, i in keys if s == source} == set(ids), source
        assert data["summary"].counts[source] == len(ids)
    assert all(re.fullmatch(r"P\d{7}", row["person_id"]) for row in rows)


def test_volume_is_about_four_records_per_person(mid):
    _, data = mid
    counts = data["summary"].counts
    per_person = sum(counts.values()) / MID_PERSONS
    assert 3.5 < per_person < 4.6
    assert counts["web_events"] > counts["crm_accounts"] > counts["crm_cases"] > counts["reviews"]


def test_timestamps_stay_inside_the_configured_window(mid):
    _, data = mid
    cfg = load_config(CONFIG)
    end = cfg["reference_date"]
    for event in data["tables"]["web_events"]:
        assert event["ts"].endswith("Z") and event["ts"][:10] < end
    stamps = [row["opened_at"] for row in data["tables"]["crm_cases"]]
    assert all(datetime.fromisoformat(s).date().isoformat() < end for s in stamps)


def test_junk_and_date_rates_are_roughly_honoured(mid):
    _, data = mid
    q = load_config(CONFIG)["quality"]
    accounts = data["tables"]["crm_accounts"]
    junk = set(q["junk_values"]["email"])
    junk_share = sum(a["email"] in junk for a in accounts) / len(accounts)
    assert q["junk_email_rate"] * 0.4 < junk_share < q["junk_email_rate"] * 2
    dobs = [a["date_of_birth"] for a in accounts]
    alt = sum(bool(re.fullmatch(r"\d\d/\d\d/\d{4}", d)) for d in dobs) / len(dobs)
    assert q["dob_alt_format_rate"] * 0.5 < alt < q["dob_alt_format_rate"] * 1.5
    missing = sum(d == "" for d in dobs) / len(dobs)
    assert q["dob_missing_rate"] * 0.6 < missing < q["dob_missing_rate"] * 1.4
    assert any(re.fullmatch(r"\d{4}-02-3[01]|\d{4}-\d\d-32", d) for d in dobs)


def test_formats_vary_like_real_data(mid):
    _, data = mid
    accounts = data["tables"]["crm_accounts"]
    phones = [a["phone"] for a in accounts if a["phone"]]
    assert any(p.startswith("+44 ") for p in phones) and any(re.fullmatch(r"07\d{9}", p) for p in phones)
    assert any("(0)" in p for p in phones) and any("-" in p for p in phones)
    postcodes = [a["postcode"] for a in accounts if a["postcode"]]
    assert any(re.fullmatch(r"[a-z0-9]{5,7}", p) for p in postcodes)
    assert any(re.fullmatch(r"[A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2}", p) for p in postcodes)
    assert {"GB", "UK"} <= {a["country"] for a in accounts}
    assert {"IE", "US"} & {a["country"] for a in accounts}
    emails = [a["email"] for a in accounts]
    assert any("+" in e for e in emails) and any(e != e.lower() for e in emails)
    assert {a["email_consent"] for a in accounts} == {"yes", "no", ""}
    notes = [c["note"] for c in data["tables"]["crm_cases"]]
    assert any("\n" in n for n in notes) and any('"' in n for n in notes) and any("," in n for n in notes)
    reviewers = [r["display_name"] for r in data["tables"]["reviews"]]
    assert any(re.fullmatch(r"[A-Z]\. [A-Z]\.", n) for n in reviewers)
    consents = {e["consent_email"] for e in data["tables"]["web_events"] if e["event_type"] == "form_submit"}
    assert {"yes", "no"} <= consents


def test_typo_and_nickname_rates_in_the_name_corruption():
    cfg = load_config(CONFIG)
    pools = build_pools(1, cfg, 500)
    quality = Quality(cfg, pools.nicknames)
    r = random.Random(5)
    trials = 20000
    changed = sum(quality.name(r, "Robert", first=True, nickname_rate=0.0).lower() != "robert" for _ in range(trials))
    expected = cfg["quality"]["name_typo_rate"] + cfg["quality"]["junk_name_rate"]
    assert expected * 0.7 < changed / trials < expected * 1.3
    nicknames = sum(quality.name(r, "Robert", first=True, nickname_rate=1.0).lower() in {"bob", "rob", "bobby", "robby"}
                    for _ in range(200))
    assert nicknames > 20


def test_population_has_households_twins_common_names_and_movers():
    cfg = load_config(CONFIG)
    people = build_population(4000, 2, cfg, build_pools(2, cfg, 4000))
    by_household = defaultdict(list)
    for person in people:
        by_household[person.household].append(person)
    shared = [members for members in by_household.values() if len(members) > 1]
    assert len(shared) > 200
    assert all(len({m.address.line1 for m in members}) == 1 for members in shared)
    twins = [m for m in shared if m[0].dob == m[1].dob and m[0].last_name == m[1].last_name
             and m[0].first_name != m[1].first_name]
    assert twins
    names = Counter((p.first_name, p.last_name) for p in people)
    common = [name for name, n in names.items() if n >= 3 and name[1] in cfg["population"]["common_last_names"]]
    assert common, "several unrelated people should share a very common name"
    assert any(p.previous_address for p in people) and any(p.maiden_name for p in people)
    assert {p.country for p in people} == {"GB", "IE", "US"}
    single = [p for p in people if len(p.channels) == 1]
    assert 0.1 < len(single) / len(people) < 0.6


def test_a_mailbox_belongs_to_one_household_even_among_namesakes():
    # Many namesakes make "george.lewis@" and "georgelewis@gmail.com" likely; Gmail ignores
    # the dots, so those are one inbox and must never go to two unrelated people.
    cfg = load_config(CONFIG)
    cfg["population"]["common_name_rate"] = 0.6
    people = build_population(3000, 5, cfg, build_pools(5, cfg, 3000))
    households_of = defaultdict(set)
    for person in people:
        for address in {person.email, person.old_email} - {""}:
            local, _, domain = address.partition("@")
            mailbox = f"{local.replace('.', '')}@{domain}" if domain == "gmail.com" else address
            households_of[mailbox].add(person.household)
    assert {m: h for m, h in households_of.items() if len(h) > 1} == {}


def test_strong_identifiers_keep_most_persons_resolvable(mid, truth):
    """Union records sharing e-mail, phone, loyalty, login, order, account, cookie or handle (as sources.yaml maps)."""
    _, data = mid
    tables = data["tables"]

    def email(value):
        value = (value or "").strip().lower()
        if "@" not in value or value in {"test@test.com", "none@none.com", "noemail@noemail.com", "x@x.com"}:
            return None
        local, _, domain = value.partition("@")
        local = local.split("+")[0]
        return "e:" + (local.replace(".", "") if domain == "gmail.com" else local) + "@" + domain

    def phone(value):
        digits = re.sub(r"\D", "", value or "")
        return "p:" + digits[-9:] if len(digits) >= 9 and len(set(digits)) > 2 and digits != "1234567890" else None

    def plain(prefix, value):
        return f"{prefix}:{value.strip().lower().lstrip('@')}" if value else None

    keys = {
        "crm_accounts": lambda r: [email(r["email"]), phone(r["phone"]), plain("l", r["loyalty_card"]),
                                   plain("w", r["web_user_id"]), plain("h", r["social_handle"]), plain("a", r["account_id"])],
        "crm_cases": lambda r: [plain("a", r["account_id"]), plain("o", r["order_number"])],
        "web_events": lambda r: [plain("c", r["cookie_id"]), plain("w", r["user_id"]), plain("o", r["order_number"]),
                                 email(r["email"])],
        "pos_transactions": lambda r: [plain("l", r["loyalty_card"]), email(r["receipt_email"]), phone(r["phone"])],
        "reviews": lambda r: [email(r["email"]), plain("o", r["order_number"])],
        "social_posts": lambda r: [plain("h", r["handle"])],
    }
    records, parent, first_seen = [], [], {}

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for source, (_, id_column) in SOURCES.items():
        for row in tables[source]:
            index = len(records)
            records.append(truth[(source, row[id_column])])
            parent.append(index)
            for key in filter(None, keys[source](row)):
                if key in first_seen:
                    parent[find(index)] = find(first_seen[key])
                else:
                    first_seen[key] = index
    pairs = lambda counter: sum(n * (n - 1) // 2 for n in counter.values())  # noqa: E731
    together = pairs(Counter((find(i), person) for i, person in enumerate(records)))
    recall = together / pairs(Counter(records))
    precision = together / pairs(Counter(find(i) for i in range(len(records))))
    assert recall > 0.95, recall
    assert precision > 0.9, precision


def test_stories_are_present_and_consistent(mid, truth):
    out, data = mid
    tables = data["tables"]
    cases = {c["case_id"]: c for c in tables["crm_cases"]}
    events = {e["event_id"]: e for e in tables["web_events"]}
    reviews = {r["review_id"]: r for r in tables["reviews"]}
    posts = {p["post_id"]: p for p in tables["social_posts"]}
    sales = {t["transaction_id"]: t for t in tables["pos_transactions"]}
    stories = [json.loads(line) for line in (out / "stories.jsonl").read_text(encoding="utf-8").splitlines()]
    kinds = Counter(s["story"] for s in stories)
    assert set(kinds) == set(load_config(CONFIG)["stories"])
    assert kinds == Counter(data["summary"].story_counts)

    def owned(source, record_id, person):
        assert truth[(source, record_id)] == person, (source, record_id)

    for story in stories:
        person, kind = story["person_id"], story["story"]
        for case_id in story.get("case_ids", []):
            assert cases[case_id]["order_number"] == story["order_number"]
            owned("crm_cases", case_id, person)
        for event_id in story.get("event_ids", []):
            owned("web_events", event_id, person)
        if kind == "cross_channel_journey":
            chat, call = (cases[c] for c in story["case_ids"])
            assert (chat["channel"], call["channel"]) == ("chat", "phone")
            assert int(chat["handle_seconds"]) > 0 and chat["opened_at"] <= call["opened_at"]
            journey = [events[e] for e in story["event_ids"]]
            assert any(e["event_type"] == "checkout" and e["order_number"] == story["order_number"] for e in journey)
            assert events[story["chat_event_id"]]["event_type"] == "chat_started"
        elif kind == "repeat_contacts":
            contacts = [cases[c] for c in story["case_ids"]]
            opened = sorted(datetime.fromisoformat(c["opened_at"]) for c in contacts)
            assert len(contacts) >= 3 and (opened[-1] - opened[0]).days < 7
            assert len({c["reason"] for c in contacts}) == 1
            assert all(c["status"] in {"open", "pending"} for c in contacts)
        elif kind == "unresolved_then_negative":
            last_case = max(cases[c]["opened_at"] for c in story["case_ids"])
            assert all(cases[c]["status"] in {"open", "pending"} for c in story["case_ids"])
            if "review_id" in story:
                review = reviews[story["review_id"]]
                assert int(review["rating"]) <= 2 and review["order_number"] == story["order_number"]
                assert review["created_at"].replace("T", " ").rstrip("Z") > last_case
                owned("reviews", story["review_id"], person)
            else:
                post = posts[story["post_id"]]
                assert post["ts"].replace("T", " ").rstrip("Z") > last_case
                owned("social_posts", story["post_id"], person)
        elif kind == "loyalty_store_purchases":
            bought = [sales[t] for t in story["transaction_ids"]]
            assert all(t["loyalty_card"] == story["loyalty_card"] for t in bought)
            assert bought[0]["receipt_email"]
        elif kind == "abandoned_cart":
            session = [e for e in events.values() if e["session_id"] == story["session_id"]]
            assert any(e["event_type"] == "add_to_cart" and e["sku"] == story["sku"] for e in session)
            assert not any(e["event_type"] == "checkout" for e in session)
            assert all(e["user_id"] for e in session if e["event_type"] == "add_to_cart")
        elif kind == "happy_reviewer":
            review = reviews[story["review_id"]]
            assert review["rating"] == "5" and review["order_number"] == story["order_number"]


def test_rejects_empty_population(tmp_path):
    with pytest.raises(ValueError):
        generate_dataset(0, 1, tmp_path, config_path=CONFIG)
