"""Flat arrays of variable-size groups (all page views of all sessions, ...), group by group."""

from __future__ import annotations

import numpy as np

from features.simulation.seasonality import IntArray


def offsets(counts: IntArray) -> IntArray:
    """Index of each group's first element in the flat array of all groups."""
    return np.cumsum(counts) - counts


def within(counts: IntArray) -> IntArray:
    """0, 1, ... position of each flat element inside its group."""
    return np.arange(int(counts.sum())) - np.repeat(offsets(counts), counts)
