"""LightGBM boosters compiled with lleaves, cached per booster text, compiled out of process.

A model version compiles once per machine into ``<digest>.raw.o`` under the cache folder;
every later load (the API after a reload, the next batch run) maps that object file. The
compile itself runs in a child process (``python -m serving.model.compiled MODEL LIBRARY``): LLVM
keeps what it allocated while compiling for the life of the process (about 100 MB for the
first model and a few MB for each one after, measured), which in a long-running API would
grow with every promoted champion. Loading a cached object costs the API a few tens of MB
once and nothing per version after.

Mapping an object file runs its code in this process, so a damaged one (random bytes, a
truncated or empty file) would abort or crash it. The compile therefore records the
object's SHA-256 beside it (``<digest>.raw.o.sha256``) and every load checks it first: an
object without a matching digest is compiled again, in the child, and never mapped.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from contract.integrity import file_sha256

log = logging.getLogger(__name__)


class CompileError(ValueError):
    """lleaves could not compile a booster (a broken or incompatible model text)."""


def compiled_model(booster_text: str, cache_dir: Path, *, timeout_seconds: float) -> Any:
    """An lleaves model of ``booster_text`` returning raw scores, loaded from the cache
    (compiled first, in a child process, when the cache lacks it)."""
    import lleaves  # ImportError here lets "auto" fall back to Booster.predict

    digest = hashlib.sha256(booster_text.encode()).hexdigest()[:20]
    cache_dir.mkdir(parents=True, exist_ok=True)
    model_file = cache_dir / f"{digest}.txt"
    if not _holds(model_file, booster_text):
        tmp = model_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(booster_text)
        tmp.replace(model_file)
    library = cache_dir / f"{digest}.raw.o"
    if not _verified(library):
        if library.exists():
            log.warning("cached compiled model %s fails its checksum: compiling again", library)
            library.unlink(missing_ok=True)
        log.info("compiling the model with lleaves (once per model version): %s", library)
        _compile_in_child(model_file, library, timeout_seconds)
        if not _verified(library):
            raise CompileError(f"the compiled {library.name} does not match its checksum")
    loaded = lleaves.Model(model_file=str(model_file))
    loaded.compile(cache=str(library), raw_score=True)
    return loaded


def _holds(path: Path, text: str) -> bool:
    try:
        return path.read_text() == text
    except (OSError, UnicodeDecodeError):
        return False


def _checksum_file(library: Path) -> Path:
    return library.with_name(f"{library.name}.sha256")


def _verified(library: Path) -> bool:
    """The object file exists and has the digest its compile recorded."""
    try:
        return file_sha256(library) == _checksum_file(library).read_text().strip()
    except OSError:
        return False


def _compile_in_child(model_file: Path, library: Path, timeout_seconds: float) -> None:
    command = [sys.executable, "-m", "serving.model.compiled", str(model_file), str(library)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_seconds)
    except subprocess.TimeoutExpired as expired:
        raise CompileError(
            f"lleaves compile of {model_file.name} took over {timeout_seconds:g} s"
        ) from expired
    if done.returncode != 0 or not library.exists():
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise CompileError(f"lleaves could not compile {model_file.name}: {tail}")


def compile_to(model_file: Path, library: Path) -> None:
    """Compile ``model_file`` into ``library``, written under a temporary name first so an
    interrupted or concurrent compile never leaves a half-written object behind."""
    import lleaves

    tmp_library = library.with_name(f"{library.name}.{os.getpid()}.tmp")
    lleaves.Model(model_file=str(model_file)).compile(cache=str(tmp_library), raw_score=True)
    checksum = _checksum_file(library)
    tmp_checksum = checksum.with_name(f"{checksum.name}.{os.getpid()}.tmp")
    tmp_checksum.write_text(file_sha256(tmp_library))
    # The digest first: a kill between the two leaves an object that fails it, never one
    # trusted without it.
    tmp_checksum.replace(checksum)
    tmp_library.replace(library)


if __name__ == "__main__":
    compile_to(Path(sys.argv[1]), Path(sys.argv[2]))
