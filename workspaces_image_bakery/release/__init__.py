"""Release with a way back: retained images, a pinned released version, a candidate bundle
(construct side of ``bakery_runtime.release``).
"""
