"""``--send``: post GA4 Measurement Protocol bodies to the collection URL, once each.

Each body is posted alone (a Measurement Protocol request is one client's). Transient
failures (connection errors, timeouts, 429 and 5xx answers) are retried with exponential
backoff by tenacity, up to ``activation.send_attempts`` tries; any other answer is a refusal
and counted, never retried. A ledger of the SHA-256 of every body accepted is kept beside the
run, appended after each success, so sending a run again (or after a crash mid-way) sends
nothing twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import orjson
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from serving.activation.settings import ActivationSettings

LEDGER_FILE = "ga4_sent.ledger"


class SendRefused(RuntimeError):
    """Sending cannot start as configured (no measurement id or API secret)."""


class _Transient(Exception):
    """An answer worth retrying (429, 5xx)."""


@dataclass
class SendSummary:
    sent: int = 0
    already_sent: int = 0
    refused: int = 0  # answered 4xx or with validation messages: retrying would not help
    gave_up: int = 0  # still failing after the last attempt

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def body_key(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def read_ledger(path: Path) -> set[str]:
    return set(path.read_text().split()) if path.exists() else set()


def _is_transient(problem: BaseException) -> bool:
    return isinstance(problem, _Transient | httpx.TransportError)


def _post_once(client: httpx.Client, url: str, params: dict[str, str], body: bytes) -> bool:
    """True when accepted; False when refused; raises ``_Transient`` to be retried."""
    answer = client.post(
        url, params=params, content=body, headers={"content-type": "application/json"}
    )
    if answer.status_code == 429 or answer.status_code >= 500:
        raise _Transient(f"HTTP {answer.status_code}")
    if answer.status_code >= 400:
        return False
    # The validation endpoint (/debug/mp/collect) answers 200 with its objections.
    if answer.content and b"validationMessages" in answer.content:
        return not orjson.loads(answer.content).get("validationMessages")
    return True


def send_bodies(
    bodies: Iterable[bytes],
    ledger: Path,
    settings: ActivationSettings,
    *,
    client: httpx.Client | None = None,
) -> SendSummary:
    """Post each body not yet in ``ledger`` to ``settings.ga4_collect_url``."""
    if not settings.ga4_measurement_id or settings.ga4_api_secret is None:
        raise SendRefused(
            "--send needs activation.ga4_measurement_id and activation.ga4_api_secret "
            "(PROPENSITY_ACTIVATION__GA4_MEASUREMENT_ID, ..._GA4_API_SECRET); nothing sent"
        )
    params = {
        "measurement_id": settings.ga4_measurement_id,
        "api_secret": settings.ga4_api_secret.get_secret_value(),
    }
    done = read_ledger(ledger)
    summary = SendSummary()
    retrying = Retrying(
        retry=retry_if_exception(_is_transient),
        stop=stop_after_attempt(settings.send_attempts),
        wait=wait_exponential(
            multiplier=settings.send_backoff_seconds, max=settings.send_backoff_max_seconds
        ),
    )
    ledger.parent.mkdir(parents=True, exist_ok=True)
    own_client = client is None
    http = client or httpx.Client(timeout=settings.send_timeout_seconds)
    try:
        with ledger.open("a") as record:
            for body in bodies:
                key = body_key(body)
                if key in done:
                    summary.already_sent += 1
                    continue
                try:
                    accepted = retrying(_post_once, http, settings.ga4_collect_url, params, body)
                except RetryError:
                    summary.gave_up += 1
                    continue
                if not accepted:
                    summary.refused += 1
                    continue
                record.write(key + "\n")
                record.flush()  # a crash after this line does not send the body again
                done.add(key)
                summary.sent += 1
    finally:
        if own_client:
            http.close()
    return summary


def bodies_of(jsonl: Path) -> Iterable[bytes]:
    """The bodies of an export's ``ga4_measurement_protocol.jsonl``, as written."""
    with jsonl.open("rb") as lines:
        for line in lines:
            if line.strip():
                yield line.rstrip(b"\n")
