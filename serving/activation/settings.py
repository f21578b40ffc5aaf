"""Settings of audience exports and GA4 delivery (``PROPENSITY_ACTIVATION__...``)."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class ActivationSettings(BaseModel):
    high_band_max_decile: int = Field(
        3, ge=1, le=10, description="deciles 1..this are score band 'high' (1 is the top 10%)"
    )
    medium_band_max_decile: int = Field(
        7, ge=1, le=10, description="deciles up to this are 'medium', the rest 'low'"
    )
    meta_batch_rows: int = Field(
        10_000, gt=0, le=10_000, description="rows per Meta customer file (Meta: 10,000 max)"
    )
    ga4_collect_url: str = Field(
        "https://www.google-analytics.com/mp/collect",
        description="where --send posts GA4 Measurement Protocol bodies",
    )
    ga4_measurement_id: str | None = Field(None, description="G-XXXXXXX of the web stream")
    ga4_api_secret: SecretStr | None = Field(None, description="Measurement Protocol secret")
    send_attempts: int = Field(5, ge=1, description="tries per request before giving up")
    send_timeout_seconds: float = Field(10.0, gt=0, description="per request")
    send_backoff_seconds: float = Field(
        0.5, ge=0, description="first wait before a retry; doubles on each retry"
    )
    send_backoff_max_seconds: float = Field(30.0, ge=0, description="longest wait between tries")
