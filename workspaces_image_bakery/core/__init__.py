"""The small core every capability builds on: AWS naming rules, tags and the tagging policy,
compute types, synth-time validation, the secret scan, cdk-nag suppressions and where the
runtime lives. It imports no capability.
"""
