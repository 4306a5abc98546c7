"""Canonical email addresses: one form per mailbox, so aliases of the same inbox match."""

from __future__ import annotations

from functools import lru_cache

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import DOT_ATOM_TEXT, EMAIL_MAX_LENGTH

from cdp_pipelines.standardize.config import StandardizeConfig, default_config
from cdp_pipelines.standardize.junk import Status, is_blank, is_junk_email, is_placeholder

_STRIP_CHARS = " \t\r\n\"'<>;,"


def _apply_provider_rules(local_part: str, domain: str, config: StandardizeConfig) -> tuple[str, str]:
    """Provider aliases (googlemail.com -> gmail.com), dropped dots and +tags where they are ignored."""
    domain = config.email_provider_aliases.get(domain, domain)
    if domain in config.email_remove_plus_tags:
        local_part = local_part.split("+", 1)[0]
    if domain in config.email_remove_dots:
        local_part = local_part.replace(".", "")
    return local_part, domain


def classify_email(value: str | None, config: StandardizeConfig | None = None) -> tuple[str | None, Status]:
    """Canonical address and what happened; syntax checked by email-validator without DNS."""
    if is_blank(value):
        return None, Status.MISSING
    config = config or default_config()
    text = str(value).strip().strip(_STRIP_CHARS)
    if text.lower().startswith("mailto:"):
        text = text[len("mailto:"):]
    if is_placeholder(text, "email", config):
        return None, Status.JUNK
    if "@" in text and is_junk_email(*text.lower().rsplit("@", 1), config):
        return None, Status.JUNK
    try:
        local_part, domain = validated_parts(text)
    except EmailNotValidError:
        return None, Status.INVALID
    local_part, domain = _apply_provider_rules(local_part.lower(), domain.lower(), config)
    if not local_part:
        return None, Status.INVALID
    if is_junk_email(local_part, domain, config):
        return None, Status.JUNK
    return f"{local_part}@{domain}", Status.OK


def validated_parts(text: str) -> tuple[str, str]:
    """(local part, domain) as email-validator's validate_email normalises them (without DNS;
    the local part may differ in letter case only); raises EmailNotValidError when it would.

    Most addresses are a plain ASCII local part at one of a few thousand domains, and
    email-validator spends most of its time on the domain (IDNA and Unicode checks). For such an
    address its answer is the local part unchanged plus its verdict on the domain alone, so the
    domain is validated once per distinct domain; anything else (quotes, display names,
    non-ASCII local parts, lengths near the limit) goes through validate_email whole.
    """
    local_part, at, domain_part = text.partition("@")
    if at and DOT_ATOM_TEXT.match(local_part):
        domain, ascii_domain = _validated_domain(domain_part)
        longest = max(len(text), len(f"{local_part}@{domain}".encode()), len(local_part) + 1 + len(ascii_domain))
        if longest <= EMAIL_MAX_LENGTH:
            return local_part, domain
    checked = validate_email(text, check_deliverability=False)
    return checked.local_part, checked.domain


@lru_cache(maxsize=65536)
def _validated_domain(domain_part: str) -> tuple[str, str]:
    """(domain, ASCII domain) of email-validator's verdict on a domain, judged with a minimal
    local part; raises EmailNotValidError (the cache keeps only valid domains)."""
    checked = validate_email(f"a@{domain_part}", check_deliverability=False)
    return checked.domain, checked.ascii_domain


@lru_cache(maxsize=65536)
def canonical_email(value: str | None) -> str | None:
    """Lower-cased, validated address with provider rules applied; None for invalid or junk."""
    return classify_email(value)[0]
