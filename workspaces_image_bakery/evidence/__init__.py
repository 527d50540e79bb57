"""The as-built evidence of an image, read on the library side: package diffs and the SBOM layer."""
