"""The score store: the latest score and decision per visitor, and the recent events that the
real-time path re-scores from. One small interface, two backends: SQLite (embedded default,
one machine) and Redis (several API replicas).

Data contract:

- a *record* is the visitor's public answer as JSON bytes (the ``VisitorScore`` shape of
  ``serving.api.schemas``), written by the batch job or by a real-time re-score;
- a *history* is the visitor's events in the feature lookback as the batch saw them (a JSON
  array, ``serving.store.history``), plus the events posted to the API since, kept in arrival
  order, at most ``keep`` per visitor;
- a *run* (``RunInfo``) describes the batch run whose records are live.

``publish`` replaces the batch records and histories atomically: a new generation is written
beside the live one and a pointer flips to it in one step, so readers see the old run or the
new one, never a mix, and a crash mid-publish leaves the old run live (its leftovers are
removed by the next publish). Real-time writes go to the live generation.

Posted events survive a publish (``RunInfo.carry_window``): in the same atomic step the new
generation takes the live one's posted events inside the new run's history window, with their
versions. Those the lake already held are the batch history's too, and reading drops a posted
event that repeats one there (``serving.store.history``), so none counts twice. A visitor
with a carried event keeps its live record when the run did not score it (known only through
the API, it stays known) or when an event is at or after the run's ``as_of`` (the live
record is a real-time one that counts what the run could not see: a purchase posted after
the cut still suppresses).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import orjson
import polars as pl

from features.definitions import FeatureConfig
from serving.store.history import EARLIEST, CarryWindow

#: Posted events (JSON bytes each) to append to one visitor's state.
Append = tuple[str, Sequence[bytes]]
#: Columns of a frame handed to ``publish``: visitor_id (String), record (Binary JSON),
#: history (Binary JSON, nullable).
PUBLISH_COLUMNS = ("visitor_id", "record", "history")


@dataclass(frozen=True)
class RunInfo:
    """One published batch run: what produced the live records."""

    run_id: str
    model_version: str
    as_of: datetime
    scored_at: datetime
    visitors: int
    #: Ascending score quantiles 0.1..0.9 of the run: the deciles of new scores use them.
    decile_cuts: tuple[float, ...]
    #: EV at which the ad budget ran out (None: the budget did not bind).
    ads_ev_floor: float | None
    extra: dict[str, object] = field(default_factory=dict)
    #: The scoring model's feature configuration: its lookback is how far back the run's
    #: stored histories reach (None: a run published before runs recorded it).
    feature_config: FeatureConfig | None = None
    #: The measured lift the run valued contacts with (``LiftModel.to_dict``; None: the
    #: policy's assumed lift). The real-time path routes with the same.
    lift: dict[str, Any] | None = None

    def to_json(self) -> bytes:
        config = (
            None if self.feature_config is None else self.feature_config.model_dump(mode="json")
        )
        return orjson.dumps({**self.__dict__, "feature_config": config})

    def history_start(self) -> datetime | None:
        """The earliest event time the run's stored histories hold (None: unknown;
        ``EARLIEST``: every event, for a full-history model)."""
        if self.feature_config is None:
            return None
        return self.feature_config.window_start(self.as_of) or EARLIEST

    def carry_window(self) -> CarryWindow:
        """Which posted events of the live generation publishing this run keeps: those its
        histories' window reads (an earlier one no model of the run reads again)."""
        return CarryWindow.of(self.as_of, self.history_start())

    @classmethod
    def from_json(cls, data: bytes | str) -> RunInfo:
        raw = orjson.loads(data)
        return cls(
            run_id=raw["run_id"],
            model_version=raw["model_version"],
            as_of=datetime.fromisoformat(raw["as_of"]),
            scored_at=datetime.fromisoformat(raw["scored_at"]),
            visitors=int(raw["visitors"]),
            decile_cuts=tuple(raw["decile_cuts"]),
            ads_ev_floor=raw["ads_ev_floor"],
            extra=raw.get("extra", {}),
            feature_config=None
            if raw.get("feature_config") is None
            else FeatureConfig.model_validate(raw["feature_config"]),
            lift=raw.get("lift"),
        )


class RecordWrite(NamedTuple):
    """A record to store for a visitor."""

    visitor_id: str
    record: bytes
    #: The state version the record was computed from (None: store unconditionally).
    if_version: int | None = None
    #: The model inputs (float64 bytes) when the record's top features are left for its
    #: next lookup to compute; None: the record is complete.
    unexplained: bytes | None = None


@dataclass(frozen=True)
class StoredRecord:
    """A visitor's live record, and the model inputs behind it while its top features are
    still to be computed (None: nothing left to do)."""

    record: bytes
    unexplained: bytes | None = None


@dataclass(frozen=True)
class VisitorState:
    """What the real-time path needs to re-score one visitor."""

    record: bytes | None
    batch_history: bytes | None
    posted_events: Sequence[bytes]
    #: Grows with every append of posted events for the visitor (0: none in this run). A
    #: record computed from this state is stored only while the version is unchanged.
    version: int = 0


class ScoreStore(Protocol):
    def publish(self, run: RunInfo, chunks: Iterable[pl.DataFrame]) -> None:
        """Replace every record and history by those of ``chunks``, atomically, carrying the
        posted events and records the module doc says over from the live generation."""
        ...

    def current_run(self) -> RunInfo | None: ...

    def get_record(self, visitor_id: str) -> bytes | None:
        """The visitor's live record (JSON bytes), or None for an unknown visitor."""
        ...

    def lookup(self, visitor_id: str) -> StoredRecord | None:
        """The visitor's live record with the inputs of a pending explanation (None for an
        unknown visitor)."""
        ...

    def put_explained(self, visitor_id: str, unexplained: bytes, explained: bytes) -> bool:
        """Replace the record ``unexplained`` by ``explained`` (the same with its top
        features) and clear the pending inputs, only if ``unexplained`` is still the live
        record (else False: a newer record came in meanwhile)."""
        ...

    def get_state(self, visitor_id: str) -> VisitorState: ...

    def append_events(self, visitor_id: str, events: Sequence[bytes], keep: int) -> VisitorState:
        """Append posted events (JSON bytes each), keeping the last ``keep``; the visitor's
        state right after, read in the same atomic step."""
        ...

    def append_many(self, appends: Sequence[Append], keep: int) -> list[VisitorState]:
        """``append_events`` for each in order, in one atomic step (one round trip): a
        visitor named twice gets the state after each of its appends."""
        ...

    def put_record(self, visitor_id: str, record: bytes, *, if_version: int | None = None) -> bool:
        """Store the visitor's record; with ``if_version``, only if no events were appended
        since the state of that version was read (else False: a later writer, whose state
        holds these events too, stores its record). Replicas and processes need no lock."""
        ...

    def put_records(self, writes: Sequence[RecordWrite]) -> list[bool]:
        """``put_record`` for each in order, in one step (one round trip); a write with
        ``unexplained`` inputs keeps them for the record's next ``lookup``."""
        ...

    def ping(self) -> bool: ...

    def close(self) -> None: ...


class StoreUnavailable(RuntimeError):
    """The store cannot be reached or opened; the message says which and why."""
