"""Run the API with uvicorn, in this process or in worker processes.

Worker processes rebuild the app from the settings handed over in an environment variable
(``handoff_environment``); the benchmark starts servers the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
from fastapi import FastAPI

from serving.api.app import create_app
from serving.settings import ServingPaths, ServingSettings

HANDOFF_VARIABLE = "PROPENSITY_SERVING_HANDOFF"


def handoff_environment(settings: ServingSettings, paths: ServingPaths) -> dict[str, str]:
    """Environment that lets ``app_from_handoff`` rebuild the app in another process (uvicorn
    workers, benchmarks). It carries the API keys: pass it only to child processes."""
    plain = settings.model_dump(mode="json")
    plain["api_keys"] = [k.get_secret_value() for k in settings.api_keys]
    given = {k: str(v) if isinstance(v, Path) else v for k, v in vars(paths).items()}
    return {HANDOFF_VARIABLE: orjson.dumps({"settings": plain, "paths": given}).decode()}


def app_from_handoff() -> FastAPI:
    """App factory for ``uvicorn serving.api.server:app_from_handoff --factory`` child processes."""
    raw = orjson.loads(os.environ[HANDOFF_VARIABLE])
    given = raw["paths"]
    paths = ServingPaths(
        lake_dir=Path(given["lake_dir"]),
        outputs_dir=Path(given["outputs_dir"]),
        serving_dir=Path(given["serving_dir"]),
        tracking_uri=given["tracking_uri"],
    )
    return create_app(ServingSettings.model_validate(raw["settings"]), paths)


def run_api(
    settings: ServingSettings,
    paths: ServingPaths,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    log_level: str = "info",
) -> None:
    """Serve the API with uvicorn (uvloop and httptools when installed); blocks.

    With ``workers > 1`` each worker process builds its own app from the same settings.
    """
    import uvicorn

    if workers == 1:
        uvicorn.run(
            create_app(settings, paths),
            host=host,
            port=port,
            log_level=log_level,
            access_log=False,
            lifespan="on",  # a failed startup (no store, refused middleware) stops the server
        )
        return
    os.environ.update(handoff_environment(settings, paths))
    uvicorn.run(
        "serving.api.server:app_from_handoff",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        lifespan="on",
    )
