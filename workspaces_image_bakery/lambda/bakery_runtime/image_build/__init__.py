"""The image build: the custom resources of images and bundles and the build workflow's steps."""
