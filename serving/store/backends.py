"""Open the configured score store. The backend is chosen here, where the settings are read:
the backends import only the interface (``serving.store.base``), never this module.
"""

from __future__ import annotations

from serving.settings import ServingPaths, ServingSettings
from serving.store.base import ScoreStore


def open_store(
    settings: ServingSettings, paths: ServingPaths, *, serving: bool = False
) -> ScoreStore:
    """The configured backend, opened (SQLite creates its file; Redis is pinged). For the
    API (``serving``), SQLite checkpoints its WAL in a background thread."""
    if settings.store == "redis":
        from serving.store.redis import RedisScoreStore

        return RedisScoreStore.connect(
            settings.redis_url,
            prefix=settings.redis_prefix,
            timeout=settings.redis_timeout_seconds,
            retries=settings.redis_retries,
        )
    from serving.store.sqlite import SqliteScoreStore

    if not serving:
        return SqliteScoreStore.open(paths.sqlite_path)
    return SqliteScoreStore.open(
        paths.sqlite_path,
        checkpoint_every=settings.sqlite_checkpoint_seconds,
        wal_restart_bytes=int(settings.sqlite_wal_restart_mb * 2**20),
    )
