"""A deterministic simulator of e-commerce events with an exactly known purchase probability."""

from features.simulation.config import SimulationConfig
from features.simulation.generator import SimulatedData, events_for_target, simulate
from features.simulation.truth import true_purchase_probability

__all__ = [
    "SimulatedData",
    "SimulationConfig",
    "events_for_target",
    "simulate",
    "true_purchase_probability",
]
