"""Emails where an identifier belongs: found, so that they are quarantined, and masked, so
that the quarantine file does not keep them either.

A tracking setup that puts the login email into ``visitor_id`` or ``user_id`` would carry
it into the lake, every feature table and the score store. The rule: a row whose
identifier contains an email address is quarantined as ``pii_in_identifier``, and every
email address in a quarantined row's text is masked to its first character and its
top-level domain (``john.doe@example.com`` -> ``j***@***.com``): enough to recognise the
mistake, not enough to identify anyone.

``EMAIL_IN_TEXT`` is read the same by Polars (Rust ``regex``) and Python's ``re``, so the
API's plain path (``serving.api.intake``) applies the very rule ingestion does. The
characters are those of real addresses, so that an address inside a JSON or CSV line is
matched without the quotes and commas around it.
"""

from __future__ import annotations

import polars as pl

#: Identifier fields of an event that must never hold an email address.
PII_CHECKED_IDS = ("visitor_id", "user_id")
PII_IN_IDENTIFIER = "pii_in_identifier"
_LOCAL = r"[\w.%+\-]"
_DOMAIN = r"[\w\-]+(?:\.[\w\-]+)*"
#: An email address anywhere in a text: local part, ``@``, a dotted domain ending in a
#: label of two or more characters.
EMAIL_IN_TEXT = rf"{_LOCAL}+@{_DOMAIN}\.\w{{2,}}"
_EMAIL_PARTS = rf"({_LOCAL}){_LOCAL}*@{_DOMAIN}\.(\w{{2,}})"
_MASK = "${1}***@***.${2}"


def holds_email(text: pl.Expr) -> pl.Expr:
    """True where the text contains an email address; null stays null."""
    return text.str.contains(EMAIL_IN_TEXT)


def mask_emails(text: pl.Expr) -> pl.Expr:
    """The text with every email address masked to ``first char***@***.tld``.

    A masked address matches ``EMAIL_IN_TEXT`` no more (``*`` is not an address character),
    so masking twice changes nothing.
    """
    return text.str.replace_all(_EMAIL_PARTS, _MASK)


def masked_quarantine(quarantined: pl.DataFrame) -> pl.DataFrame:
    """Quarantined rows (``QUARANTINE_SCHEMA``) with the emails of ``detail`` and ``raw`` masked."""
    return quarantined.with_columns(mask_emails(pl.col("detail")), mask_emails(pl.col("raw")))
