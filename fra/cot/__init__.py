"""Chain of thought: feature-resolved thought anchors on teacher-forced reasoning traces.

traces (reasoning-gym problems -> sentences with kinds) -> anchors (sentence attention, receiver heads)
-> suppression (sentence x sentence KL) -> channels (receiver heads resolved into feature pairs).
"""
