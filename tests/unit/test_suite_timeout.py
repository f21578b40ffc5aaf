"""The suite itself: a hung test fails (pytest-timeout) instead of stalling CI."""

from __future__ import annotations

import pytest


def test_every_test_has_a_timeout(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.hasplugin("timeout")
    assert 0 < float(pytestconfig.getini("timeout")) <= 600
