"""Deploy-time runtime of workspaces-image-bakery: custom resources and image build steps.

This folder is a Lambda asset. It depends on the Lambda Python runtime's boto3 only.
"""
