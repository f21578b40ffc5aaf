"""The simulated shop's catalog: items with a category, a price and a popularity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from features.simulation.config import SimulationConfig
from features.simulation.seasonality import FloatArray, IntArray

CATEGORY_NAMES: tuple[str, ...] = (
    "apparel", "shoes", "accessories", "beauty", "home", "kitchen", "garden", "electronics",
    "computers", "phones", "toys", "books", "sports", "outdoor", "grocery", "pets",
    "baby", "health", "office", "automotive",
)  # fmt: skip
#: Zipf exponent of item popularity: a few best sellers, a long tail.
POPULARITY_EXPONENT = 1.1
#: Median price of a typical category, and the spread of prices between and within categories.
MEDIAN_PRICE = 30.0
CATEGORY_PRICE_SIGMA = 0.7
ITEM_PRICE_SIGMA = 0.6
MIN_PRICE = 0.99


@dataclass(frozen=True)
class Catalog:
    """One entry per item (index = item number)."""

    item_ids: pl.Series
    category: IntArray  # index into ``category_names``
    category_names: pl.Series
    price: FloatArray  # in currency units, rounded to cents
    popularity_cdf: FloatArray

    def draw_items(self, rng: np.random.Generator, n: int) -> IntArray:
        """``n`` item numbers drawn by popularity."""
        drawn = np.searchsorted(self.popularity_cdf, rng.random(n), side="right")
        return np.minimum(drawn, self.price.size - 1).astype(np.int64)


def _category_names(n: int) -> pl.Series:
    names = [*CATEGORY_NAMES[:n], *(f"category_{i + 1}" for i in range(len(CATEGORY_NAMES), n))]
    return pl.Series("item_category", names, dtype=pl.String)


def draw_catalog(config: SimulationConfig, rng: np.random.Generator) -> Catalog:
    n = config.items
    category = rng.integers(0, config.categories, n)
    category_level = np.log(MEDIAN_PRICE) + CATEGORY_PRICE_SIGMA * rng.standard_normal(
        config.categories
    )
    log_price = category_level[category] + ITEM_PRICE_SIGMA * rng.standard_normal(n)
    price = np.maximum(np.round(np.exp(log_price), 2), MIN_PRICE)
    weights = rng.permutation(np.arange(1, n + 1, dtype=np.float64) ** -POPULARITY_EXPONENT)
    width = max(5, len(str(n - 1)))
    ids = pl.select(
        pl.format("i{}", pl.int_range(0, n).cast(pl.String).str.zfill(width)).alias("item_id")
    ).to_series()
    return Catalog(
        item_ids=ids,
        category=category.astype(np.int64),
        category_names=_category_names(config.categories),
        price=price,
        popularity_cdf=np.cumsum(weights) / weights.sum(),
    )
