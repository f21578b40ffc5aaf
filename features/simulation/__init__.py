"""A deterministic simulator of e-commerce events with an exactly known purchase probability."""

from features.simulation.as_of import as_of_purchase_probability, last_seen
from features.simulation.config import SimulationConfig
from features.simulation.generator import SimulatedData, events_for_target, simulate
from features.simulation.truth import true_purchase_probability

__all__ = [
    "SimulatedData",
    "SimulationConfig",
    "as_of_purchase_probability",
    "events_for_target",
    "last_seen",
    "simulate",
    "true_purchase_probability",
]
