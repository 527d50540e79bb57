"""Opt-in rollout of a bundle's new image to its existing WorkSpaces (construct side of
``bakery_runtime.rollout``).
"""
