"""The local copy of a registered version's artifact is a cache: verified before every load.

Each downloaded folder gets a manifest beside it (``<folder>.sha256.json``: relative path ->
SHA-256 of every file, written once the download is complete). A copy is used only when the
manifest is there, every file still has its recorded digest and the files the version's tags
name (``contract.integrity``) have the digests training logged. Anything else (a truncated or
edited file, a missing manifest, a half-removed folder) means: download again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

from contract.integrity import file_sha256

log = logging.getLogger(__name__)


def manifest_path(folder: Path) -> Path:
    return folder.with_name(f"{folder.name}.sha256.json")


def write_manifest(folder: Path) -> None:
    """Record the digest of every file now in ``folder`` (called right after a download)."""
    digests = {
        str(path.relative_to(folder)): file_sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
    manifest = manifest_path(folder)
    tmp = manifest.with_name(f"{manifest.name}.tmp")
    tmp.write_text(json.dumps(digests, indent=1))
    tmp.replace(manifest)


def mismatch(folder: Path, marker: str, logged: Mapping[str, str]) -> str | None:
    """Why the cached ``folder`` cannot be used (None when it can): ``marker`` is the file
    that must be in it, ``logged`` file name -> SHA-256 from the version's tags."""
    if not any(folder.rglob(marker)):
        return f"no {marker}"
    try:
        recorded: dict[str, str] = json.loads(manifest_path(folder).read_text())
        for relative, digest in recorded.items():
            if file_sha256(folder / relative) != digest:
                return f"{relative} changed since it was downloaded"
    except (OSError, ValueError, AttributeError) as problem:
        return f"its manifest or a file is unreadable ({type(problem).__name__})"
    for name, digest in logged.items():
        for path in folder.rglob(name):
            if recorded.get(str(path.relative_to(folder))) != digest:
                return f"{name} does not match the checksum logged with the version"
    return None
