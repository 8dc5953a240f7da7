"""The decision cores: pure state machines over an injected clock, and the store
protocols they are shared through.

Nothing here does I/O, waits, or knows whether its caller is sync or async; nothing here
imports from ``resilience._policies`` or any subsystem above it. A policy's logic lives in
one module of this folder, and its drivers in ``resilience._policies`` only wait.
"""
