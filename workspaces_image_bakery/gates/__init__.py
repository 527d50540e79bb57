"""Gates a build passes before its image is taken (the vulnerability gate)."""
