"""Wiring for the propensity service: the typed settings and the one CLI."""
