"""The persona: props checked into a plain spec, then its image, bundles, distribution and tags."""
