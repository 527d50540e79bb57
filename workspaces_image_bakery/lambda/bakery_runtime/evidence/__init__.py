"""The as-built evidence of an image: its record and its SBOM."""
