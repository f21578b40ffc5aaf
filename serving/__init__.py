"""Serving: batch scoring, the score store, the routing policy and the real-time API."""
