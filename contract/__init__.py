"""The model contract: what a registered model carries, read the same way by training and
serving: its feature configuration and label horizon, its scoring spec and calibrator, and
the calibration error both sides report."""
