"""Mapping files: validated on load, with messages that say what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from features.events.schema import EVENT_COLUMNS
from features.ingest.mapping import (
    BUILTIN_MAPPINGS,
    MappableField,
    MappingError,
    builtin_mapping,
    load_mapping,
)

EXAMPLE = Path(__file__).parents[4] / "examples" / "mappings" / "uci_online_retail.toml"


def test_every_canonical_field_but_source_is_mappable() -> None:
    assert {*get_args(MappableField), "source"} == set(EVENT_COLUMNS)


@pytest.mark.parametrize("name", BUILTIN_MAPPINGS)
def test_builtin_mappings_load(name: str) -> None:
    assert builtin_mapping(name).name == name


def test_example_mapping_loads() -> None:
    mapping = load_mapping(EXAMPLE)
    assert mapping.refund is not None
    assert mapping.constants == {"event_name": "purchase"}


def test_unknown_target_event_name_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text(
        'name = "x"\n[columns]\nvisitor_id = "a"\nevent_time = "b"\nevent_name = "c"\n'
        '[event_names]\npv = "look"\n'
    )
    with pytest.raises(MappingError, match="unknown event names"):
        load_mapping(path)


def test_missing_required_field_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('name = "x"\n[columns]\nvisitor_id = "a"\nevent_time = "b"\n')
    with pytest.raises(MappingError, match="required field 'event_name'"):
        load_mapping(path)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text("name = \n")
    with pytest.raises(MappingError, match=r"m\.toml is not valid TOML"):
        load_mapping(path)
