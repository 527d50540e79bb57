"""Patch cadence: a persona's template checked on a schedule for pending security updates."""
