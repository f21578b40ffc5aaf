"""How a scoring run becomes the published one, and how the next start repairs a publish
that was killed (``kill -9``, a power cut) at any point.

The steps, in order (their names are ``STEPS``):

1. ``staged``: every file of the run, ``summary.json`` last, is written and fsynced in a
   private folder ``.<run>.<pid>.partial``;
2. ``store-writing``: the run's records go into a new generation of the score store;
3. ``store-switched``: the store switches to that generation in one step. **This is the
   commit point**: from here the API answers with the run;
4. ``set-aside`` (only when a folder of the same name exists): that folder is renamed to a
   leftover; ``renamed``: the staging folder is renamed to ``<run>``, whole or not at all;
5. ``pointer-written``, ``pointed``: ``latest.json``, written to a temporary file, fsynced
   and renamed over the old one, names the run; the files' readers follow it.

Why the store and not ``latest.json`` commits: after a kill the store cannot be put back
without the run's records, while the pointer and the folder are finished from what the
store and the staged folder already hold. ``recover`` does that, at the start of the score
job and of the API: when the store names a run whose folder is not in place, the dead
writer's staged folder of that run is renamed into place; then ``latest.json`` is made to
name the store's run. It only ever writes what the killed job was about to write, so an API
starting while a job publishes cannot undo it (a live writer's folder is never touched).
Killed before the commit point, the new run left only its staging, which nothing reads.
Leftovers of dead processes (staging and set-aside folders, temporary pointers) are removed.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import psutil

from serving.batch.outputs import ScoringSummary
from serving.store.base import ScoreStore

log = logging.getLogger(__name__)

STEPS = (
    "staged",
    "store-writing",
    "store-switched",
    "set-aside",
    "renamed",
    "pointer-written",
    "pointed",
)
POINTER = "latest.json"
#: Called with each step's name once it is done (``STEPS``): the crash tests kill there.
Step = Callable[[str], None]
#: A process's creation time and a file's time come from different clocks' roundings.
_CLOCK_SLACK_SECONDS = 1.0


@dataclass(frozen=True)
class Recovery:
    """What the start of a job or of the API repaired."""

    #: The run whose staged folder was renamed into place (the store had switched to it).
    placed: str | None = None
    #: The run ``latest.json`` was made to name (it named another, or was missing).
    pointed: str | None = None
    #: Leftovers of dead processes removed: staging folders and temporary pointers.
    removed: int = 0


def staging_folder(scoring_dir: Path, run_id: str) -> Path:
    return scoring_dir / f".{run_id}.{os.getpid()}.partial"


def _writer_pid(leftover: Path) -> int | None:
    """The pid in ``.<label>.<pid>.<suffix>``."""
    parts = leftover.name.split(".")
    return int(parts[-2]) if len(parts) >= 4 and parts[-2].isdigit() else None


def _writer_is_dead(leftover: Path) -> bool:
    """True when the process that wrote ``leftover`` is gone. A pid can be reused: a process
    holding it that started after the leftover was last written is not its writer."""
    pid = _writer_pid(leftover)
    if pid is None:
        return False  # not ours to judge
    if pid == os.getpid():
        return False  # this process cleans up its own (``finally``)
    try:
        started = psutil.Process(pid).create_time()
        written = leftover.stat().st_mtime
    except psutil.NoSuchProcess:
        return True
    except (psutil.AccessDenied, FileNotFoundError):
        return False
    return started > written + _CLOCK_SLACK_SECONDS


def _leftovers(scoring_dir: Path) -> list[Path]:
    if not scoring_dir.is_dir():
        return []
    return [*scoring_dir.glob(".*.partial"), *scoring_dir.glob(f".{Path(POINTER).stem}.*.tmp")]


def _sync(path: Path) -> None:
    """fsync a file or a folder (its entries: a rename in it lasts a power cut)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_folder(folder: Path) -> None:
    """fsync every file of ``folder``, then the folder: its contents last a power cut before
    the rename that makes it visible."""
    for file in folder.iterdir():
        if file.is_file():
            _sync(file)
    _sync(folder)


def place_folder(staging: Path, run_dir: Path, step: Step) -> None:
    """Rename ``staging`` to ``run_dir``; a folder already there is first renamed to a
    leftover (a rename cannot replace a non-empty folder), removed once the new one is in."""
    set_aside = None
    if run_dir.exists():
        set_aside = run_dir.with_name(f".{run_dir.name}-replaced.{os.getpid()}.partial")
        shutil.rmtree(set_aside, ignore_errors=True)
        run_dir.replace(set_aside)
        step("set-aside")
    staging.replace(run_dir)
    _sync(run_dir.parent)
    step("renamed")
    if set_aside is not None:
        shutil.rmtree(set_aside, ignore_errors=True)


def point_latest(scoring_dir: Path, summary: ScoringSummary, step: Step = lambda _: None) -> None:
    """Make ``latest.json`` name ``summary``'s run, whole or not at all, durably."""
    tmp = scoring_dir / f".{Path(POINTER).stem}.{os.getpid()}.tmp"
    with tmp.open("wb") as out:
        out.write(orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2))
        out.flush()
        os.fsync(out.fileno())
    step("pointer-written")
    tmp.replace(scoring_dir / POINTER)
    _sync(scoring_dir)
    step("pointed")


def _pointed_run(scoring_dir: Path) -> str | None:
    try:
        return str(orjson.loads((scoring_dir / POINTER).read_bytes())["run_id"])
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
        return None  # missing or unreadable: rewritten from the run's summary


def _summary(folder: Path) -> ScoringSummary | None:
    try:
        return ScoringSummary.from_json((folder / "summary.json").read_bytes())
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def _place_staged(scoring_dir: Path, run_id: str, scored_at: object) -> bool:
    """Rename the dead writer's staged folder of ``run_id`` (the one whose summary the store
    published: same ``scored_at``) into place; False when there is none to take."""
    for staged in sorted(scoring_dir.glob(f".{run_id}.*.partial")):
        summary = _summary(staged)
        if summary is None or summary.scored_at != scored_at or not _writer_is_dead(staged):
            continue
        try:
            # A plain rename: the run's folder is not there, and of two processes finishing
            # the same publish (API workers starting together) one renames, the other fails.
            staged.replace(scoring_dir / run_id)
        except OSError:
            return False
        _sync(scoring_dir)
        log.warning("the run %s was published but not moved into place: moved it", run_id)
        return True
    return False


def remove_dead_leftovers(scoring_dir: Path) -> int:
    """Remove staging folders and temporary pointers of processes that died; a live
    writer's are kept. Returns how many were removed."""
    removed = 0
    for leftover in _leftovers(scoring_dir):
        if _writer_is_dead(leftover):
            log.warning("removing %s, left by a run that did not finish", leftover)
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
            removed += 1
    return removed


def recover(scoring_dir: Path, store: ScoreStore) -> Recovery:
    """Finish a publish that was killed after its commit point, and remove dead leftovers,
    so that the store, the run's folder and ``latest.json`` name the same complete run."""
    # The pointer is read before the store: a job publishing meanwhile only moves the store
    # forward, so the run read from the store is never older than the pointer read.
    pointed = _pointed_run(scoring_dir)
    run = store.current_run()
    placed = pointed_now = None
    if run is not None:
        folder = scoring_dir / run.run_id
        if _summary(folder) is None and _place_staged(scoring_dir, run.run_id, run.scored_at):
            placed = run.run_id
        summary = _summary(folder)
        if summary is None:
            if pointed != run.run_id:
                log.warning(
                    "the store serves run %s but %s holds no complete folder of it (yet, "
                    "if a job is publishing it): latest.json left as it is",
                    run.run_id,
                    scoring_dir,
                )
        elif pointed != run.run_id:
            point_latest(scoring_dir, summary)
            pointed_now = run.run_id
            log.warning(
                "latest.json named %s, the store serves %s: now names it", pointed, run.run_id
            )
    return Recovery(placed=placed, pointed=pointed_now, removed=remove_dead_leftovers(scoring_dir))
