"""Read a text file (plain or gzip) as blocks of whole lines, each knowing its first line.

The blocks are what lets a parser use several cores and still name exact lines: each block
ends at a line break, and its first physical line number is known before it is parsed
(line breaks counted in the blocks before it), so line numbers inside a block are the
block's own business. Reading, and for gzip decompressing, runs on a background thread
(zlib and file reads release the GIL), so it overlaps with parsing and validation.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from features.ingest.batch import IngestError
from features.ingest.lines import open_binary
from features.ingest.prefetch import prefetched

_CR, _LF = 13, 10


@dataclass(frozen=True)
class TextBlock:
    """Consecutive whole lines of a file: ``data`` starts at physical line ``first_line``."""

    first_line: int
    data: bytes

    def nonblank_lines(self) -> np.ndarray:
        """Physical line numbers of the block's lines that are not empty (nor a bare CR).

        These are the lines a CSV parser reads as records, in order: a parser's n-th record
        of the block (1-based) sits on ``nonblank_lines()[n - 1]``.
        """
        raw = np.frombuffer(self.data, dtype=np.uint8)
        ends = np.flatnonzero(raw == _LF)
        if raw.size and raw[-1] != _LF:  # the file's last line, without its line break
            ends = np.append(ends, raw.size)
        starts = np.concatenate(([0], ends[:-1] + 1))
        length = ends - starts
        bare_cr = (length == 1) & (raw[np.minimum(starts, raw.size - 1)] == _CR)
        return self.first_line + np.flatnonzero((length > 0) & ~bare_cr).astype(np.int64)


def _read_blocks(path: Path, block_bytes: int, skip_lines: int) -> Iterator[TextBlock]:
    with open_binary(path) as handle:
        for _ in range(skip_lines):
            handle.readline()
        next_line = skip_lines + 1
        carry = b""
        while True:
            try:
                chunk = handle.read(block_bytes)
            except (OSError, EOFError, zlib.error) as err:
                raise IngestError(f"{path}: unreadable after line ~{next_line - 1}: {err}") from err
            if not chunk:
                break
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0:  # one line longer than a block: keep reading
                carry = data
                continue
            carry = data[cut:]
            block = TextBlock(next_line, data[:cut])
            next_line += block.data.count(b"\n")
            yield block
        if carry:
            yield TextBlock(next_line, carry)


def iter_blocks(path: Path, block_bytes: int, *, skip_lines: int = 0) -> Iterator[TextBlock]:
    """Blocks of about ``block_bytes`` (whole lines) after the first ``skip_lines`` lines.

    Read ahead on a background thread, two blocks deep: memory is a few blocks, whatever
    the file's size.
    """
    if block_bytes < 1:
        raise ValueError(f"block_bytes must be positive, got {block_bytes}")
    return prefetched(_read_blocks(path, block_bytes, skip_lines), depth=2)
