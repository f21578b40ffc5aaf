"""Identifiers in the contacts store: normalised, owner-only, optionally hashed only."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import polars as pl

from features.ingest.contacts import CONTACTS_FILE, ingest_contacts_file, read_contacts
from features.ingest.identifiers import (
    IDENTIFIERS_FILE,
    hash_identifiers,
    normalise_identifiers,
    read_identifiers,
)

CONTACTS_CSV = (
    "visitor_id,email_status,ads_consent,updated_at,email,phone,first_name,last_name,"
    "country,postal_code\n"
    "v1,subscribed,granted,2024-01-01T00:00:00Z, Jane.Doe@Example.COM ,+1 (650) 555-1234,"
    " Mary  Ann ,O'Brien,us,94043\n"
    "v2,subscribed,granted,2024-01-01T00:00:00Z,not-an-email,5551234,,,USA,\n"
    ",subscribed,granted,2024-01-01T00:00:00Z,lost@example.com,,,,,\n"
)


def _ingest(tmp_path: Path, *, raw: bool) -> Path:
    source = tmp_path / "contacts.csv"
    source.write_text(CONTACTS_CSV)
    lake = tmp_path / "lake"
    ingest_contacts_file(
        source,
        lake_dir=lake,
        quarantine_dir=tmp_path / "quarantine",
        ingest_id="i1",
        store_raw_identifiers=raw,
    )
    return lake


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_identifiers_are_stored_normalised_and_owner_only(tmp_path: Path) -> None:
    lake = _ingest(tmp_path, raw=True)
    stored = read_identifiers(lake).sort("visitor_id")
    assert stored.get_column("visitor_id").to_list() == ["v1", "v2"]
    v1, v2 = stored.to_dicts()
    assert v1["email"] == "jane.doe@example.com"
    assert v1["phone"] == "+16505551234"
    assert (v1["first_name"], v1["last_name"], v1["country"]) == ("mary ann", "o'brien", "US")
    # Values that normalise to nothing are null, never an empty string to hash.
    assert (v2["email"], v2["phone"], v2["country"]) == (None, None, None)
    path = lake / IDENTIFIERS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_identifiers_never_reach_the_contacts_table_or_quarantine(tmp_path: Path) -> None:
    lake = _ingest(tmp_path, raw=True)
    assert "email" not in read_contacts(lake).columns
    written = (lake / CONTACTS_FILE).read_bytes()
    quarantined = b"".join(p.read_bytes() for p in (tmp_path / "quarantine").rglob("*.*"))
    for secret in (b"example.com", b"Example.COM", b"555"):
        assert secret not in written
        assert secret not in quarantined


def test_hashed_mode_keeps_no_raw_email_phone_or_name(tmp_path: Path) -> None:
    lake = _ingest(tmp_path, raw=False)
    stored = read_identifiers(lake).sort("visitor_id")
    assert "email" not in stored.columns
    v1 = stored.row(0, named=True)
    assert v1["email_sha256"] == _sha("jane.doe@example.com")
    assert v1["phone_sha256"] == _sha("+16505551234")
    assert v1["phone_digits_sha256"] == _sha("16505551234")
    assert v1["fn_sha256"] == _sha("maryann")  # Meta: letters only
    assert v1["ln_sha256"] == _sha("obrien")
    assert b"jane" not in (lake / IDENTIFIERS_FILE).read_bytes()


def test_switching_to_hashed_mode_hashes_what_was_stored(tmp_path: Path) -> None:
    _ingest(tmp_path, raw=True)
    lake = _ingest(tmp_path, raw=False)
    assert "email" not in read_identifiers(lake).columns


def test_hashing_is_the_sha256_of_the_normalised_value() -> None:
    raw = normalise_identifiers(pl.DataFrame({"visitor_id": ["a"], "email": ["A@B.co "]}))
    hashed = hash_identifiers(raw)
    assert hashed.item(0, "email_sha256") == _sha("a@b.co")
    assert hashed.item(0, "phone_sha256") is None


def test_a_file_without_a_column_keeps_the_stored_value(tmp_path: Path) -> None:
    lake = _ingest(tmp_path, raw=False)
    update = tmp_path / "update.csv"
    update.write_text(
        "visitor_id,email_status,ads_consent,updated_at,email\n"
        "v1,subscribed,granted,2024-02-01T00:00:00Z,new@example.org\n"
    )
    ingest_contacts_file(update, lake_dir=lake, quarantine_dir=tmp_path / "q", ingest_id="i2")
    v1 = read_identifiers(lake).filter(pl.col("visitor_id") == "v1").row(0, named=True)
    assert v1["email_sha256"] == _sha("new@example.org")
    assert v1["phone_sha256"] == _sha("+16505551234")  # no phone column: kept
    assert v1["country"] == "US"
