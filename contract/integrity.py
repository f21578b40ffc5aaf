"""Checksums logged with a model version, so every cached copy can be verified before use.

Training tags each registered version with the SHA-256 of the files serving reads
(``scoring.json``, ``booster.txt``); serving checks its cached copy against those tags before
loading it and downloads again on a mismatch. A version logged before these tags existed is
checked against the digests recorded when the cache was filled.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from contract.scoring import BOOSTER_FILE, SPEC_FILE

#: Model-version tag -> the artifact file whose SHA-256 (hex) it holds.
DIGEST_TAGS: Mapping[str, str] = {"scoring_sha256": SPEC_FILE, "booster_sha256": BOOSTER_FILE}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def digest_tags(files: Mapping[str, bytes]) -> dict[str, str]:
    """The tags to log with a version whose artifact holds ``files`` (file name -> bytes)."""
    return {tag: sha256_hex(files[name]) for tag, name in DIGEST_TAGS.items() if name in files}


def logged_digests(tags: Mapping[str, str] | None) -> dict[str, str]:
    """File name -> expected SHA-256, from a version's tags (empty for an untagged version)."""
    return {name: tags[tag] for tag, name in DIGEST_TAGS.items() if tags and tag in tags}
