"""The real-time API: lookups, what-if scoring and event intake with re-scoring, over FastAPI."""
