"""Copies in other Regions and shares with other accounts: the distribution provider's handlers."""
