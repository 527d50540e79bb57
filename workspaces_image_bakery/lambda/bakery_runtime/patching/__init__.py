"""Patch cadence: a scheduled check for pending security updates on a template WorkSpace."""
