"""The Segment mapping table in the docs is the one in the code."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

from features.ingest.segment import SEGMENT_CALL_TYPES, SEGMENT_TO_GA4

ROOT = Path(__file__).parents[4]


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_data_page_shows_the_segment_table_of_the_code() -> None:
    source = (ROOT / "docs" / "data.md").read_text(encoding="utf8")
    rendered = _hooks().on_page_markdown(source, page=None, config=None, files=None)
    section = rendered.split("## Segment and RudderStack", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (.+?) \| `(\w+)` \|$", section, flags=re.MULTILINE)
    expected = [(f"`{name}`", canonical.value) for name, canonical in SEGMENT_TO_GA4.items()]
    expected += [
        (f"a `{call}` call", canonical.value) for call, canonical in SEGMENT_CALL_TYPES.items()
    ]
    assert rows == expected
