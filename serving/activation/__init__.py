"""Activation: a scoring run's audience in the upload formats of ad platforms, email tools
and GA4, with consent re-checked against the latest contacts at export time."""
