"""Simulate a web shop: GA4-style events, a contactability table, and the ground truth.

Deterministic by seed. Every stage is vectorised over all visitors, sessions and rows, so
ten million events take seconds. The generative model is described where it lives:
visitors in ``visitors``, session timing and the funnel decisions in ``sessions``, the event
layout in ``events``, and the exact purchase probability in ``truth``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from features.simulation.catalog import draw_catalog
from features.simulation.config import SimulationConfig
from features.simulation.events import expand_events
from features.simulation.frames import contacts_frame, events_frame
from features.simulation.sessions import draw_sessions
from features.simulation.visitors import draw_visitors, truth_frame, visitor_ids

#: Visitors in the pilot run that ``events_for_target`` uses to measure events per visitor.
PILOT_VISITORS = 20_000


@dataclass(frozen=True)
class SimulatedData:
    """What ``simulate`` returns.

    ``events``: canonical ``EVENT_SCHEMA`` rows (one per event and item), ``source =
    "simulator"``, sorted by ``event_time``, all within ``[config.start, config.end)``.
    ``contacts``: ``CONTACT_SCHEMA``, one row per visitor (including visitors with no event
    in the period). ``truth``: one row per visitor with the latent parameters, the input of
    ``true_purchase_probability``.
    """

    events: pl.DataFrame
    contacts: pl.DataFrame
    truth: pl.DataFrame


def simulate(config: SimulationConfig) -> SimulatedData:
    """Draw visitors, their sessions and events; the same config gives the same data."""
    # Independent streams per stage, so that e.g. a bigger catalog leaves visitors unchanged.
    visitor_rng, catalog_rng, session_rng, event_rng, contact_rng = np.random.default_rng(
        config.seed
    ).spawn(5)
    visitors = draw_visitors(config, visitor_rng)
    catalog = draw_catalog(config, catalog_rng)
    sessions = draw_sessions(config, visitors, session_rng)
    parts = expand_events(config, visitors, sessions, catalog, event_rng)
    ids = visitor_ids(config.visitors)
    return SimulatedData(
        events=events_frame(parts, catalog, ids, visitors, config),
        contacts=contacts_frame(config, visitors, ids, contact_rng),
        truth=truth_frame(visitors, ids, config),
    )


def events_for_target(n_events: int, days: int = 90) -> SimulationConfig:
    """A default config (with ``days``) whose run yields about ``n_events`` events.

    Events per visitor are measured on a small pilot run with the same settings (about 10
    over 90 days), so the result is deterministic and typically within a few percent.
    """
    if n_events < 1:
        raise ValueError(f"n_events must be positive, got {n_events}")
    pilot = SimulationConfig(visitors=PILOT_VISITORS, days=days)
    per_visitor = simulate(pilot).events.height / PILOT_VISITORS
    return replace(pilot, visitors=max(1, math.ceil(n_events / per_visitor)))
