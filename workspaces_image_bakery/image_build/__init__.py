"""The build: an image snapshotted from a template WorkSpace during the deploy, the custom bundle
on it, preparation through Run Command, and the shared runtime that runs it (construct side of
``bakery_runtime.image_build``).
"""
