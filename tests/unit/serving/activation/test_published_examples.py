"""Golden values from the platforms' own documentation, not from this code.

Meta publishes normalised forms and SHA-256 outputs for its customer information parameters
(Conversions API, "Customer Information Parameters", the same rules as Custom Audiences and
its business SDK): https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters
Google publishes the rules for Customer Match but no hashed example; its email rule
(trim, lower-case, SHA-256 hex) gives the same value as Meta's for the same address.
"""

from __future__ import annotations

import polars as pl

from features.ingest.identifiers import hash_identifiers, normalise_identifiers
from serving.activation.formats import customer_match_rows, meta_rows
from serving.activation.settings import ActivationSettings

# Meta's documented examples: input -> expected SHA-256.
META_EMAIL = (
    "John_Smith@gmail.com",
    "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f",
)
# Meta's example is the US number (650)555-1212, normalised 16505551212; the contacts store
# needs the country code to place a number, so it is given here as +1 (650) 555-1212.
META_PHONE = (
    "+1 (650)555-1212",
    "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176",
)
META_FIRST_NAMES = {
    "Mary": "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec",
    "정": "8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14",
    "Valéry": "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c",
}  # fmt: skip


def _hashed(**columns: list[str | None]) -> pl.DataFrame:
    size = len(next(iter(columns.values())))
    raw = pl.DataFrame({"visitor_id": [f"v{i}" for i in range(size)], **columns})
    return hash_identifiers(normalise_identifiers(raw))


def test_meta_email_phone_and_names_hash_to_metas_published_values() -> None:
    names = list(META_FIRST_NAMES)
    hashed = _hashed(
        email=[META_EMAIL[0], None, None],
        phone=[META_PHONE[0], None, None],
        first_name=names,
        last_name=names,
    )
    rows = meta_rows(hashed, ActivationSettings())
    assert rows.get_column("EMAIL")[0] == META_EMAIL[1]
    assert rows.get_column("PHONE")[0] == META_PHONE[1]
    assert rows.get_column("FN").to_list() == list(META_FIRST_NAMES.values())
    assert rows.get_column("LN").to_list() == list(META_FIRST_NAMES.values())


def test_customer_match_email_follows_the_same_published_rule() -> None:
    hashed = _hashed(email=[f"  {META_EMAIL[0]} "])
    rows = customer_match_rows(hashed, ActivationSettings())
    assert rows.get_column("Email")[0] == META_EMAIL[1]
