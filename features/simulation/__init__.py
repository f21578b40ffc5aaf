"""A deterministic simulator of e-commerce events with an exactly known purchase probability."""

from features.simulation.as_of import as_of_purchase_probability, last_seen
from features.simulation.config import SimulationConfig
from features.simulation.generator import SimulatedData, events_for_target, simulate
from features.simulation.ideal import ideal_purchase_probability, observed_histories
from features.simulation.reference import reference_probabilities
from features.simulation.truth import true_purchase_probability

__all__ = [
    "SimulatedData",
    "SimulationConfig",
    "as_of_purchase_probability",
    "events_for_target",
    "ideal_purchase_probability",
    "last_seen",
    "observed_histories",
    "reference_probabilities",
    "simulate",
    "true_purchase_probability",
]
