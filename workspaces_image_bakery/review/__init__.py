"""The pull-request review written next to the templates on every synth."""
