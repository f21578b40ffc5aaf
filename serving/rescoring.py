"""Re-scoring posted events: ``POST /v1/events`` requests waiting at the same moment are
appended, re-scored, re-routed and stored together (``serving.batching``).

A batch costs one store transaction for the appends, one for the records, one model call,
one ``pred_contrib`` call and one routing call, however many visitors it holds; features
are the online path's (``RealTimeScorer.features_of_many``), so each visitor's answer is
the one ``POST /v1/score`` would give for the same events and ``as_of``. A visitor posted
to twice in one batch is handled in two rounds, so each answer is the state right after
that request's own events, as if the requests had come one by one.

Records are written only while the visitor's state is unchanged since it was read
(``put_records`` with versions): another process or replica that appended meanwhile
stores its own, newer record, and this one is dropped and counted as superseded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from serving.history import encode_events, read_history
from serving.metrics import ServingMetrics
from serving.realtime import Contact, RealTimeScorer, Visitor
from serving.schemas import Rejection
from serving.store import RecordWrite, ScoreStore


@dataclass(frozen=True)
class PostedEvents:
    """One request's checked events and how to score them."""

    visitor_id: str
    #: History events (``serving.history``), at least one.
    accepted: list[dict[str, Any]]
    rejected: list[Rejection]
    as_of: datetime
    scored_at: datetime
    #: Given with the request; None: the visitor's stored contactability.
    contact: Contact | None = None


def rounds(visitor_ids: Sequence[str]) -> list[list[int]]:
    """Positions grouped so that no visitor appears twice in a group, each visitor's
    positions in order across groups (round r holds every visitor's r-th request)."""
    grouped: list[list[int]] = []
    seen: dict[str, int] = {}
    for position, visitor_id in enumerate(visitor_ids):
        r = seen.get(visitor_id, -1) + 1
        seen[visitor_id] = r
        if r == len(grouped):
            grouped.append([])
        grouped[r].append(position)
    return grouped


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
    bodies: list[bytes] = [b""] * len(posted)
    run = store.current_run()
    for group in rounds([p.visitor_id for p in posted]):
        jobs = [posted[i] for i in group]
        states = store.append_many(
            [(job.visitor_id, encode_events(job.accepted)) for job in jobs], keep
        )
        histories = [read_history(s.batch_history, s.posted_events, keep) for s in states]
        features = scorer.features_of_many(histories, [job.as_of for job in jobs])
        pairs = zip(jobs, states, strict=True)
        contacts = [job.contact or Contact.from_record(s.record) for job, s in pairs]
        visitors = [
            Visitor(job.visitor_id, job.as_of, job.scored_at, contact)
            for job, contact in zip(jobs, contacts, strict=True)
        ]
        records = scorer.score_many(visitors, features, run=run, explain=explain)
        pending: list[bytes | None] = (
            [None] * len(jobs)
            if explain or not scorer.settings.top_features
            else [row.tobytes() for row in scorer.model_inputs(features)]
        )
        stored = store.put_records(
            [
                RecordWrite(job.visitor_id, record, state.version, inputs)
                for job, record, state, inputs in zip(jobs, records, states, pending, strict=True)
            ]
        )
        for i, job, record, kept in zip(group, jobs, records, stored, strict=True):
            if not kept:
                # Events came in meanwhile (another replica or process): its writer, whose
                # state holds these events too, stores the record. This answer is still
                # this state's.
                metrics.superseded.inc()
            metrics.scores.labels(orjson.loads(record)["route"], "events").inc()
            bodies[i] = orjson.dumps(
                {
                    "accepted": len(job.accepted),
                    "rejected": [r.model_dump() for r in job.rejected],
                    "score": orjson.Fragment(record),
                }
            )
    return bodies
