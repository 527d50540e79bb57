"""Build once, distribute: copies in other Regions and shares with other accounts (construct side
of ``bakery_runtime.distribution``).
"""
