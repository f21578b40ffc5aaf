"""MkDocs hooks: the parts of the docs that are generated from the code, so they cannot drift.

- ``<!-- generated: features -->``: every public feature with its type and doc line, from
  ``features.definitions`` (the one definition);
- ``<!-- generated: settings -->``: every setting with its environment variable, default and
  description, from the settings models (``propensity.settings.Settings``);
- ``<!-- generated: endpoints -->``: every API route from the app's OpenAPI schema, which is
  also published beside the pages as ``openapi.json``;
- ``<!-- generated: segment -->``: the Segment / RudderStack to GA4 (canonical) event names,
  from ``features.ingest.segment.SEGMENT_TO_GA4`` (the one table the reader uses).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page
from pydantic import BaseModel, TypeAdapter

#: Settings whose values become part of a trained model (its contract): serving follows the
#: model, so a change takes effect only through a retrain.
MODEL_SETTINGS = (
    "SNAPSHOTS__LOOKBACK",
    "SNAPSHOTS__SESSION_TIMEOUT",
    "SNAPSHOTS__LOCAL_TIME_OFFSET",
    "SNAPSHOTS__HORIZON",
)


def _kind(name: str) -> str:
    if name in MODEL_SETTINGS:
        return "model"
    if name.startswith(("SNAPSHOTS__", "TRAINING__")):
        return "training"
    if name.startswith("SERVING__ROUTING__"):
        return "business"
    return "operations"


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, timedelta | datetime):
        return str(TypeAdapter(type(value)).dump_python(value, mode="json"))
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, BaseModel | dict | list | tuple):
        text = json.dumps(TypeAdapter(Any).dump_python(value, mode="json"))
        return "" if text in ("[]", "{}") else text
    return str(value)


def _settings(model: BaseModel | type[BaseModel], prefix: str) -> Iterator[tuple[str, str, str]]:
    """(variable, default, description) of every leaf field, nested models walked through
    their default instances (a channel's default costs live on the policy, not the class)."""
    cls = model if isinstance(model, type) else type(model)
    for name, field in cls.model_fields.items():
        value = (
            getattr(model, name)
            if not isinstance(model, type)
            else field.get_default(call_default_factory=True)
        )
        variable = f"{prefix}{name.upper()}"
        if isinstance(value, BaseModel):
            yield from _settings(value, f"{variable}__")
        else:
            yield variable, _shown(value), field.description or ""


def settings_table() -> str:
    from propensity.settings import Settings

    rows = ["| variable `PROPENSITY_…` | default | kind | meaning |", "|---|---|---|---|"]
    for variable, default, description in _settings(Settings, ""):
        shown = f"`{default}`" if default else ""
        cell = description.replace("|", "\\|")
        rows.append(f"| `{variable}` | {shown} | {_kind(variable)} | {cell} |")
    return "\n".join(rows)


def features_table() -> str:
    from features.definitions import PUBLIC_FEATURES

    rows = ["| feature | type | definition |", "|---|---|---|"]
    for feature in PUBLIC_FEATURES:
        doc = feature.doc.replace("|", "\\|")
        rows.append(f"| `{feature.name}` | {feature.dtype} | {doc} |")
    return "\n".join(rows)


def _openapi() -> dict[str, Any]:
    from serving.api.app import create_app
    from serving.settings import ServingPaths, ServingSettings

    nowhere = Path("/nonexistent")
    app = create_app(ServingSettings(), ServingPaths(nowhere, nowhere, nowhere, None))
    return app.openapi()


def endpoints_table() -> str:
    rows = ["| method | path | what |", "|---|---|---|"]
    for path, operations in _openapi()["paths"].items():
        for method, operation in operations.items():
            text = " ".join((operation.get("description") or operation.get("summary", "")).split())
            summary = text.split(". ")[0].rstrip(".") + "."
            rows.append(f"| {method.upper()} | `{path}` | {summary} |")
    return "\n".join(rows)


def segment_table() -> str:
    from features.ingest.segment import SEGMENT_CALL_TYPES, SEGMENT_TO_GA4

    rows = ["| Segment / RudderStack | GA4 (canonical) event |", "|---|---|"]
    rows += [f"| `{name}` | `{canonical}` |" for name, canonical in SEGMENT_TO_GA4.items()]
    rows += [
        f"| a `{call}` call | `{canonical}` |" for call, canonical in SEGMENT_CALL_TYPES.items()
    ]
    return "\n".join(rows)


GENERATED = {
    "<!-- generated: features -->": features_table,
    "<!-- generated: settings -->": settings_table,
    "<!-- generated: endpoints -->": endpoints_table,
    "<!-- generated: segment -->": segment_table,
}


def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(File.generated(config, "openapi.json", content=json.dumps(_openapi(), indent=1)))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    for marker, table in GENERATED.items():
        if marker in markdown:
            markdown = markdown.replace(marker, table())
    return markdown
