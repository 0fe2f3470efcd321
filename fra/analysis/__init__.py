"""Scoring and testing on top of the engine: head scores, probes, channel statistics, the induction study."""
