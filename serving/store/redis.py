"""Redis score store: the same interface as SQLite, shared by several API replicas.

Keys under ``<prefix>:``: ``current`` (live generation), ``run`` (its ``RunInfo``), ``gens``
(every generation ever started, so a crashed publish is cleaned up later), and per generation
``g<g>:r:<visitor>`` (record), ``g<g>:h:<visitor>`` (batch history), ``g<g>:e:<visitor>``
(list of posted events), ``g<g>:v:<visitor>`` (events ever appended: the state's version),
``g<g>:x:<visitor>`` (the model inputs of a record whose explanation is pending),
``g<g>:touched`` (the visitors posted to).
Publishing writes the new generation's keys in pipelined chunks, carries the posted events and
records the new run keeps (``serving.store.base``) in batches, then in one script carries those
of visitors posted to meanwhile and flips ``current`` and ``run``, then unlinks the old keys.
Reads, appends and conditional writes resolve the generation inside a Lua script: one round
trip, never a torn read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl

from serving.store.base import (
    PUBLISH_COLUMNS,
    Append,
    RecordWrite,
    RunInfo,
    StoredRecord,
    StoreUnavailable,
    VisitorState,
)

_LOOKUP = """
local g = redis.call('GET', KEYS[1]) or '0'
local base = ARGV[1] .. ':g' .. g
return {redis.call('GET', base .. ':r:' .. ARGV[2]), redis.call('GET', base .. ':x:' .. ARGV[2])}
"""
_PUT_EXPLAINED = """
local g = redis.call('GET', KEYS[1]) or '0'
local base = ARGV[1] .. ':g' .. g
if redis.call('GET', base .. ':r:' .. ARGV[2]) ~= ARGV[3] then return 0 end
redis.call('SET', base .. ':r:' .. ARGV[2], ARGV[4])
redis.call('DEL', base .. ':x:' .. ARGV[2])
return 1
"""
_GET_STATE = """
local g = redis.call('GET', KEYS[1]) or '0'
local base = ARGV[1] .. ':g' .. g
return {redis.call('GET', base .. ':r:' .. ARGV[2]), redis.call('GET', base .. ':h:' .. ARGV[2]),
        redis.call('LRANGE', base .. ':e:' .. ARGV[2], 0, -1),
        redis.call('GET', base .. ':v:' .. ARGV[2]) or '0'}
"""
_APPEND = """
local g = redis.call('GET', KEYS[1]) or '0'
local base = ARGV[1] .. ':g' .. g
local key = base .. ':e:' .. ARGV[2]
for i = 4, #ARGV do redis.call('RPUSH', key, ARGV[i]) end
redis.call('SADD', base .. ':touched', ARGV[2])
redis.call('LTRIM', key, -tonumber(ARGV[3]), -1)
local version = redis.call('INCRBY', base .. ':v:' .. ARGV[2], #ARGV - 3)
return {redis.call('GET', base .. ':r:' .. ARGV[2]), redis.call('GET', base .. ':h:' .. ARGV[2]),
        redis.call('LRANGE', key, 0, -1), tostring(version)}
"""
#: Carry one visitor's posted events and record from the live generation into the new one
#: (``serving.store.base``) at ``version``; ``ob``/``nb`` are the two generations' bases.
_CARRY = """
local function carry(v, version)
  local events = redis.call('LRANGE', ob .. ':e:' .. v, 0, -1)
  redis.call('DEL', nb .. ':e:' .. v)
  local any, late = false, false
  for _, raw in ipairs(events) do
    local ok, event = pcall(cjson.decode, raw)
    local t = ok and type(event) == 'table' and tonumber(event['event_time']) or nil
    if start == nil or (t ~= nil and t >= start) then
      redis.call('RPUSH', nb .. ':e:' .. v, raw)
      any = true
      late = late or (t ~= nil and t >= as_of)
    end
  end
  redis.call('SET', nb .. ':v:' .. v, version)
  if not any then return end
  local record = redis.call('GET', ob .. ':r:' .. v)
  if record and (late or redis.call('EXISTS', nb .. ':r:' .. v) == 0) then
    redis.call('SET', nb .. ':r:' .. v, record)
    local pending = redis.call('GET', ob .. ':x:' .. v)
    if pending then redis.call('SET', nb .. ':x:' .. v, pending)
    else redis.call('DEL', nb .. ':x:' .. v) end
  end
end
"""
#: ``publish``'s first pass carries the visitors of ARGV[6..]; its switch carries those
#: appended to since (their version moved on), then flips ``current`` and ``run``, all in
#: one step. ARGV: prefix, live and new generation, window start ('' for none), as_of.
_CARRY_HEAD = """
local ob = ARGV[1] .. ':g' .. ARGV[2]
local nb = ARGV[1] .. ':g' .. ARGV[3]
local start = tonumber(ARGV[4])
local as_of = tonumber(ARGV[5])
-- One past the live version: a re-score that read its state before the switch (another
-- batch history) finds its version gone and leaves the new run's record be.
local function next_version(v)
  return tostring(tonumber(redis.call('GET', ob .. ':v:' .. v) or '0') + 1)
end
"""
_CARRY_SOME = (
    _CARRY_HEAD
    + _CARRY
    + """
for i = 6, #ARGV do carry(ARGV[i], next_version(ARGV[i])) end
"""
)
_SWITCH = (
    _CARRY_HEAD
    + _CARRY
    + """
for _, v in ipairs(redis.call('SMEMBERS', ob .. ':touched')) do
  local version = next_version(v)
  if redis.call('GET', nb .. ':v:' .. v) ~= version then carry(v, version) end
end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[6])
"""
)
_PUT = """
local g = redis.call('GET', KEYS[1]) or '0'
local base = ARGV[1] .. ':g' .. g
if ARGV[4] ~= '' and (redis.call('GET', base .. ':v:' .. ARGV[2]) or '0') ~= ARGV[4] then
  return 0
end
redis.call('SET', base .. ':r:' .. ARGV[2], ARGV[3])
if ARGV[5] == '' then
  redis.call('DEL', base .. ':x:' .. ARGV[2])
else
  redis.call('SET', base .. ':x:' .. ARGV[2], ARGV[5])
end
return 1
"""


def _state(found: list[Any]) -> VisitorState:
    record, history, posted, version = found
    return VisitorState(
        record=bytes(record) if record else None,
        batch_history=bytes(history) if history else None,
        posted_events=[bytes(e) for e in posted],
        version=int(version),
    )


class RedisScoreStore:
    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._current_key = f"{prefix}:current"
        self._get_state = client.register_script(_GET_STATE)
        self._append = client.register_script(_APPEND)
        self._put = client.register_script(_PUT)
        self._lookup = client.register_script(_LOOKUP)
        self._put_explained = client.register_script(_PUT_EXPLAINED)
        self._carry_some = client.register_script(_CARRY_SOME)
        self._switch = client.register_script(_SWITCH)

    @classmethod
    def connect(
        cls, url: str, *, prefix: str = "propensity", timeout: float = 2.0, retries: int = 1
    ) -> RedisScoreStore:
        """A stalled or stopped Redis fails a call within about ``(retries + 1) * timeout``
        seconds; a restarted one is reconnected to on the next call (the retry)."""
        import redis
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries),
        )
        try:
            client.ping()
        except redis.RedisError as problem:
            raise StoreUnavailable(f"Redis score store at {url}: {problem}") from problem
        return cls(client, prefix)

    def _key(self, generation: int | str, kind: str, visitor_id: str) -> str:
        return f"{self.prefix}:g{generation}:{kind}:{visitor_id}"

    def publish(self, run: RunInfo, chunks: Iterable[pl.DataFrame]) -> None:
        generation = int(self.client.incr(f"{self.prefix}:last"))
        self.client.sadd(f"{self.prefix}:gens", 0, generation)
        for chunk in chunks:
            pipe = self.client.pipeline(transaction=False)
            for visitor_id, record, history in chunk.select(PUBLISH_COLUMNS).iter_rows():
                pipe.set(self._key(generation, "r", visitor_id), record)
                if history is not None:
                    pipe.set(self._key(generation, "h", visitor_id), history)
            pipe.execute()
        live = int(self.client.get(self._current_key) or 0)
        window = run.carry_window()
        head = [self.prefix, live, generation, "" if window.start is None else window.start]
        head.append(window.as_of)
        # Most posted events are carried in batches before the switch, so that the switch,
        # which blocks Redis, only carries the visitors posted to meanwhile.
        posted = f"{self.prefix}:g{live}:e:"
        visitors: list[str] = []
        for key in self.client.scan_iter(match=f"{posted}*", count=10_000):
            visitors.append(key.decode()[len(posted) :])
            if len(visitors) >= 1_000:
                self._carry_some(args=[*head, *visitors])
                visitors.clear()
        if visitors:
            self._carry_some(args=[*head, *visitors])
        self._switch(keys=[self._current_key, f"{self.prefix}:run"], args=[*head, run.to_json()])
        self._drop_other_generations(generation)

    def _drop_other_generations(self, keep: int) -> None:
        for raw in self.client.smembers(f"{self.prefix}:gens"):
            old = int(raw)
            if old == keep:
                continue
            batch: list[bytes] = []
            for key in self.client.scan_iter(match=f"{self.prefix}:g{old}:*", count=10_000):
                batch.append(key)
                if len(batch) >= 10_000:
                    self.client.unlink(*batch)
                    batch.clear()
            if batch:
                self.client.unlink(*batch)
            self.client.srem(f"{self.prefix}:gens", old)

    def current_run(self) -> RunInfo | None:
        raw = self.client.get(f"{self.prefix}:run")
        return None if raw is None else RunInfo.from_json(raw)

    def get_record(self, visitor_id: str) -> bytes | None:
        found = self.lookup(visitor_id)
        return None if found is None else found.record

    def lookup(self, visitor_id: str) -> StoredRecord | None:
        record, unexplained = self._lookup(keys=[self._current_key], args=[self.prefix, visitor_id])
        if not record:
            return None
        return StoredRecord(bytes(record), bytes(unexplained) if unexplained else None)

    def put_explained(self, visitor_id: str, unexplained: bytes, explained: bytes) -> bool:
        args = [self.prefix, visitor_id, unexplained, explained]
        return bool(self._put_explained(keys=[self._current_key], args=args))

    def get_state(self, visitor_id: str) -> VisitorState:
        return _state(self._get_state(keys=[self._current_key], args=[self.prefix, visitor_id]))

    def append_events(self, visitor_id: str, events: Sequence[bytes], keep: int) -> VisitorState:
        return self.append_many([(visitor_id, events)], keep)[0]

    def append_many(self, appends: Sequence[Append], keep: int) -> list[VisitorState]:
        # Each append is one atomic script; a pipeline sends them in one round trip, and a
        # visitor named twice sees its own earlier append (scripts run in order).
        pipe = self.client.pipeline(transaction=False)
        for visitor_id, events in appends:
            args = [self.prefix, visitor_id, keep, *events]
            script = self._append if events else self._get_state
            script(keys=[self._current_key], args=args if events else args[:2], client=pipe)
        return [_state(found) for found in pipe.execute()]

    def put_record(self, visitor_id: str, record: bytes, *, if_version: int | None = None) -> bool:
        return self.put_records([RecordWrite(visitor_id, record, if_version)])[0]

    def put_records(self, writes: Sequence[RecordWrite]) -> list[bool]:
        pipe = self.client.pipeline(transaction=False)
        for visitor_id, record, if_version, unexplained in writes:
            version = "" if if_version is None else str(if_version)
            args = [self.prefix, visitor_id, record, version, unexplained or b""]
            self._put(keys=[self._current_key], args=args, client=pipe)
        return [bool(stored) for stored in pipe.execute()]

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except Exception:
            return False

    def close(self) -> None:
        self.client.close()
