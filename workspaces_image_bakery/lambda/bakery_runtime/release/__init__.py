"""Retention, pruning and the released (pinned) image."""
