"""Re-scoring posted events: ``POST /v1/events`` requests waiting at the same moment are
appended, re-scored, re-routed and stored together (``serving.api.batching``).

A batch costs one store transaction for the appends, one for the records, one model call,
one routing call (and one ``pred_contrib`` call when explaining inline), however many
visitors it holds; features are the online path's (``RealTimeScorer.features_of_many``, one
numpy pass), so each visitor's answer is the one ``POST /v1/score`` would give for the same
events and ``as_of``. A visitor posted to twice in one batch gets two answers, each from
the state right after that request's own events, as if the requests had come one by one;
the later one is stored.

Each answer says whether the stored history held every event of the model's window
(``history_complete``): after a swap to a model with a longer lookback, the live run's
histories are shorter than it reads until the next batch run stores longer ones.

Records are written only while the visitor's state is unchanged since it was read
(``put_records`` with versions): another process or replica that appended meanwhile
stores its own, newer record, and this one is dropped and counted as superseded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from serving.api.metrics import ServingMetrics
from serving.api.realtime import Contact, RealTimeScorer, Visitor
from serving.api.schemas import Rejection
from serving.store.base import RecordWrite, ScoreStore
from serving.store.history import encode_events, read_stored_history


@dataclass(frozen=True)
class PostedEvents:
    """One request's checked events and how to score them."""

    visitor_id: str
    #: History events (``serving.store.history``), at least one.
    accepted: list[dict[str, Any]]
    rejected: list[Rejection]
    as_of: datetime
    scored_at: datetime
    #: Given with the request; None: the visitor's stored contactability.
    contact: Contact | None = None
    #: The fields of the stored contactability the request changes (the others stay).
    contact_update: Mapping[str, str | None] | None = None


def rescore_posted(
    posted: Sequence[PostedEvents],
    scorer: RealTimeScorer,
    store: ScoreStore,
    *,
    keep: int,
    metrics: ServingMetrics,
    explain: bool = True,
) -> list[bytes]:
    """Append each request's events, re-score and re-route its visitor, store the records;
    the response bodies (``EventsResponse`` JSON), in order. ``explain=False`` stores the
    records with their model inputs and no top features: the next lookup computes them."""
    metrics.event_batches.observe(len(posted))
    run = store.current_run()
    # One transaction in arrival order: a visitor posted to twice gets the state after each
    # of its appends, so each answer is its own request's state.
    states = store.append_many([(p.visitor_id, encode_events(p.accepted)) for p in posted], keep)
    histories = [read_stored_history(s.batch_history, s.posted_events, keep) for s in states]
    features = scorer.features_of_many([h.events for h in histories], [p.as_of for p in posted])
    lookback, stored_from = (
        scorer.loaded.feature_config.lookback,
        run.history_start() if run else None,
    )
    complete = [
        h.complete(p.as_of, lookback, stored_from) for h, p in zip(histories, posted, strict=True)
    ]
    metrics.history_incomplete.inc(complete.count(False))
    pairs = zip(posted, states, strict=True)
    contacts = [
        p.contact or Contact.from_record(s.record).updated(p.contact_update) for p, s in pairs
    ]
    visitors = [
        Visitor(p.visitor_id, p.as_of, p.scored_at, contact, whole)
        for p, contact, whole in zip(posted, contacts, complete, strict=True)
    ]
    records = scorer.score_many(visitors, features, run=run, explain=explain)
    pending: list[bytes | None] = (
        [None] * len(posted)
        if explain or not scorer.settings.top_features
        else [row.tobytes() for row in scorer.model_inputs(features)]
    )
    # Only each visitor's last request of the batch is stored: its state holds the events
    # of the others, whose records it replaces at once.
    last = {p.visitor_id: i for i, p in enumerate(posted)}
    # A record scored as of a moment before events the store holds (a caller's early
    # ``as_of``) is answered, never stored: the stored record must not forget them.
    kept = [
        i
        for i, p in enumerate(posted)
        if last[p.visitor_id] == i and not histories[i].holds_events_from(p.as_of)
    ]
    stored = store.put_records(
        [RecordWrite(posted[i].visitor_id, records[i], states[i].version, pending[i]) for i in kept]
    )
    # A write refused: events came in meanwhile (another replica or process), and its
    # writer, whose state holds these events too, stores the record. The answers stand.
    metrics.superseded.inc(stored.count(False))
    bodies, routes = [], Counter[str]()
    for job, record in zip(posted, records, strict=True):
        routes[orjson.loads(record)["route"]] += 1
        bodies.append(
            orjson.dumps(
                {
                    "accepted": len(job.accepted),
                    "rejected": [r.model_dump() for r in job.rejected],
                    "score": orjson.Fragment(record),
                }
            )
        )
    for route, count in routes.items():
        metrics.scores.labels(route, "events").inc(count)
    return bodies
