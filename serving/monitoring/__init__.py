"""Monitoring: drift of the scored population and realised performance, with their report."""
