"""Stacks that assemble the constructs."""

from .image_bakery_stack import ImageBakeryStack

__all__ = ["ImageBakeryStack"]
