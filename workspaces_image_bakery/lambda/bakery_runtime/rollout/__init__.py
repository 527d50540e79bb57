"""The rollout's step: rebuilding existing WorkSpaces onto their bundle's new image."""
