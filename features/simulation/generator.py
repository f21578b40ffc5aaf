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

from features.simulation.catalog import Catalog, draw_catalog
from features.simulation.config import SimulationConfig
from features.simulation.events import expand_events
from features.simulation.frames import contacts_frame, events_frame
from features.simulation.sessions import draw_sessions
from features.simulation.visitors import Visitors, draw_visitors, truth_frame, visitor_ids

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


#: Random streams by stage, spawned from the seed: independent, so that e.g. a bigger
#: catalog leaves visitors unchanged, and a campaign round leaves the shop's own events be.
STREAMS = ("visitors", "catalog", "sessions", "events", "contacts", "traits", "campaigns")


def stream(config: SimulationConfig, name: str, *key: int) -> np.random.Generator:
    """The random stream of stage ``name`` (with ``key``: a sub-stream of it, e.g. a round)."""
    child = STREAMS.index(name)
    return np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(child, *key)))


@dataclass(frozen=True)
class World:
    """The shop's latent side: visitors and catalog, the same for a config every time."""

    visitors: Visitors
    catalog: Catalog
    ids: pl.Series


def world(config: SimulationConfig) -> World:
    return World(
        draw_visitors(config, stream(config, "visitors")),
        draw_catalog(config, stream(config, "catalog")),
        visitor_ids(config.visitors),
    )


def simulate(config: SimulationConfig) -> SimulatedData:
    """Draw visitors, their sessions and events; the same config gives the same data."""
    shop = world(config)
    visitors, catalog, ids = shop.visitors, shop.catalog, shop.ids
    sessions = draw_sessions(config, visitors, stream(config, "sessions"))
    parts = expand_events(config, visitors, sessions, catalog, stream(config, "events"))
    return SimulatedData(
        events=events_frame(parts, catalog, ids, visitors, config),
        contacts=contacts_frame(config, visitors, ids, stream(config, "contacts")),
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
