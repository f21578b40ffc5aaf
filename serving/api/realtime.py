"""Real-time scoring of one visitor: features from events through the online path (or given
by name), then the same ``score_and_route`` the batch job runs, on one row. Features are
computed with the loaded model's feature configuration, as the batch job computes them.

The budget of a run cannot be re-decided for one visitor, so ads are admitted at or above
the EV floor at which the last batch run's budget ran out (no floor: not binding), and
contacts are valued with the lift the last batch run used (measured or assumed). Deciles
use the last run's cut points, so a real-time decile means the same as a batch one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
import orjson

from contract.uplift import UpliftScorer
from features.definitions import FEATURE_COLUMNS
from features.online import OnlineFeatureEvaluator
from serving.model.registry import LoadedModel
from serving.model.scoring import ROUTING_FEATURES, decile_of, model_columns, score_and_route
from serving.model.spec import top_contributions
from serving.model.uplift import UpliftLoader, predicted_uplift, usable_uplift
from serving.policy.lift import LiftModel
from serving.policy.routing import REASONS, ROUTES, RoutingPolicy, with_holdout_shares
from serving.settings import ServingSettings
from serving.store.base import RunInfo, StoredRecord
from serving.store.records import real_time_record


class FeatureInputError(ValueError):
    """Posted features do not match the model's inputs; the message lists the differences."""


@dataclass(frozen=True)
class Contact:
    email_status: str = "unknown"
    ads_consent: str = "unknown"

    @classmethod
    def from_record(cls, record: bytes | None) -> Contact:
        if not record:
            return cls()
        stored = orjson.loads(record)
        return cls(stored.get("email_status", "unknown"), stored.get("ads_consent", "unknown"))

    def updated(self, given: Mapping[str, str | None] | None) -> Contact:
        """This contactability with the fields ``given`` sets; a field omitted (or null)
        stays as it is."""
        if not given:
            return self
        return replace(self, **{k: v for k, v in given.items() if v is not None})


@dataclass(frozen=True)
class Visitor:
    """Who is scored, as of when, and how they may be contacted."""

    visitor_id: str
    as_of: datetime
    scored_at: datetime
    contact: Contact
    #: Scored from a stored history: whether it held every event of the model's window
    #: (None: the caller gave the events or the features).
    history_complete: bool | None = None


class RealTimeScorer:
    """Built once per loaded model; ``score_*`` are thread-safe."""

    def __init__(
        self,
        loaded: LoadedModel,
        settings: ServingSettings,
        uplift_loader: UpliftLoader | None = None,
    ) -> None:
        self.loaded = loaded
        self.settings = settings
        #: Loads the uplift models a run's lift fit ranks channels by (None: none are used).
        self.uplift_loader = uplift_loader
        self.columns = model_columns(loaded.model)
        # The model's own feature configuration, and only what the model and routing read:
        # the rest would not change the answer.
        self.evaluator = OnlineFeatureEvaluator(
            loaded.feature_config, only={*loaded.model.feature_names, *ROUTING_FEATURES}
        )
        self._position = {name: i for i, name in enumerate(FEATURE_COLUMNS)}
        self._lifts: dict[str, tuple[LiftModel, dict[str, UpliftScorer]]] = {}

    def features_from_events(
        self, events: Sequence[Mapping[str, Any]], as_of: datetime
    ) -> np.ndarray:
        """The visitor's features (``FEATURE_COLUMNS`` order) from their events before as_of."""
        return self.evaluator.vector(events, as_of)

    def features_of_many(
        self, histories: Sequence[Sequence[Mapping[str, Any]]], as_of: Sequence[datetime]
    ) -> np.ndarray:
        """One row of features per visitor, each from their events before their as_of (one
        numpy pass for all)."""
        return self.evaluator.matrix(histories, as_of)

    def features_from_names(self, named: Mapping[str, float | None]) -> np.ndarray:
        """A feature vector from values by name; a feature not given is missing (NaN), as a
        null one (the model's trees route missing values as in training)."""
        unknown = sorted(set(named) - set(FEATURE_COLUMNS))
        if unknown:
            raise FeatureInputError(f"features this model does not know: {unknown[:5]}")
        vector = np.full(len(FEATURE_COLUMNS), np.nan)
        for name, value in named.items():
            vector[self._position[name]] = np.nan if value is None else float(value)
        return vector

    def score(
        self,
        visitor_id: str,
        features: np.ndarray,
        *,
        as_of: datetime,
        scored_at: datetime,
        contact: Contact,
        run: RunInfo | None,
    ) -> bytes:
        """Score and route one visitor; the stored record (``VisitorScore`` JSON)."""
        visitor = Visitor(visitor_id, as_of, scored_at, contact)
        return self.score_many([visitor], features.reshape(1, -1), run=run)[0]

    def score_many(
        self,
        visitors: Sequence[Visitor],
        features: np.ndarray,
        *,
        run: RunInfo | None,
        explain: bool = True,
    ) -> list[bytes]:
        """Score and route visitors (one row of ``features`` each) in one model call; their
        records (``VisitorScore`` JSON). ``explain=False`` leaves ``top_features`` null, for
        ``explain_records`` to fill in later from ``model_inputs``."""
        floor = run.ads_ev_floor if run is not None and run.ads_ev_floor is not None else -np.inf
        lift, uplift_models = self._lift(run)
        scored = score_and_route(
            self.loaded.model,
            features,
            visitor_id=[v.visitor_id for v in visitors],
            email_status=np.array([v.contact.email_status for v in visitors], dtype=object),
            ads_consent=np.array([v.contact.ads_consent for v in visitors], dtype=object),
            policy=self._policy(run),
            ads_ev_floor=floor,
            lift=lift,
            columns=self.columns,
            predicted_uplift=predicted_uplift(uplift_models, features),
        )
        deciles = decile_of(scored.score, run.decile_cuts if run else ()).tolist()
        explained = (
            self.top_features(self.model_inputs(features)) if explain else [None] * len(visitors)
        )
        routed = scored.routed
        return [
            real_time_record(
                visitor_id=visitor.visitor_id,
                score=score,
                decile=decile or None,
                route=ROUTES[route],
                reason=REASONS[reason],
                expected_value=value,
                model_version=self.loaded.info.version,
                as_of=visitor.as_of,
                scored_at=visitor.scored_at,
                email_status=visitor.contact.email_status,
                ads_consent=visitor.contact.ads_consent,
                top_features=top,
                history_complete=visitor.history_complete,
            )
            for visitor, score, decile, route, reason, value, top in zip(
                visitors,
                scored.score.tolist(),
                deciles,
                routed.route.tolist(),
                routed.reason.tolist(),
                routed.expected_value.tolist(),
                explained,
                strict=True,
            )
        ]

    def _policy(self, run: RunInfo | None) -> RoutingPolicy:
        """The routing policy with the live run's holdout shares (which a detectable effect
        may have sized for the run's audience)."""
        shares = run.extra.get("holdout_shares") if run is not None else None
        if not isinstance(shares, dict):
            return self.settings.routing
        return with_holdout_shares(self.settings.routing, shares)

    def _lift(self, run: RunInfo | None) -> tuple[LiftModel | None, dict[str, UpliftScorer]]:
        """The measured lift the live run routed with and the uplift models it ranks channels
        by, read once per fit (the run records only the rankings it could use)."""
        if run is None or run.lift is None:
            return None, {}
        fit_id = str(run.lift["fit_id"])
        if fit_id not in self._lifts:
            lift = LiftModel.from_dict(run.lift)
            models: dict[str, UpliftScorer] = {}
            if self.uplift_loader is None:
                lift = replace(lift, uplift={})
            else:
                computed = {*self.loaded.model.feature_names, *ROUTING_FEATURES}
                used, models = usable_uplift(
                    lift, self.uplift_loader, self.loaded.feature_config, computed
                )
                lift = used or lift
            self._lifts = {fit_id: (lift, models)}
        return self._lifts[fit_id]

    def model_inputs(self, features: np.ndarray) -> np.ndarray:
        """The model's input matrix of feature rows (``FEATURE_COLUMNS`` order)."""
        return np.ascontiguousarray(features[:, self.columns], dtype=np.float64)

    def top_features(self, inputs: np.ndarray) -> list[list[dict[str, Any]] | None]:
        """Per row of model inputs, the top contributing features (None each when none are
        asked for)."""
        k = self.settings.top_features
        if not k:
            return [None] * len(inputs)
        order, values = top_contributions(self.loaded.model, inputs, k)
        names = self.loaded.model.feature_names
        return [
            [{"feature": names[j], "contribution": v} for j, v in zip(row, row_values, strict=True)]
            for row, row_values in zip(order.tolist(), values.tolist(), strict=True)
        ]

    def explain_records(self, pending: Sequence[StoredRecord]) -> list[bytes | None]:
        """Records left unexplained by ``score_many(explain=False)``, with their top features
        computed from their stored model inputs; None for a record this model did not score
        (its explanation is not this model's to give)."""
        version, width = self.loaded.info.version, len(self.columns)
        parsed = [orjson.loads(p.record) for p in pending]
        mine = [
            i
            for i, (p, record) in enumerate(zip(pending, parsed, strict=True))
            if record.get("model_version") == version
            and p.unexplained is not None
            and len(p.unexplained) == width * 8
        ]
        explained: list[bytes | None] = [None] * len(pending)
        if not mine:
            return explained
        inputs = np.stack([np.frombuffer(pending[i].unexplained or b"") for i in mine])
        for i, top in zip(mine, self.top_features(inputs), strict=True):
            explained[i] = orjson.dumps({**parsed[i], "top_features": top})
        return explained
