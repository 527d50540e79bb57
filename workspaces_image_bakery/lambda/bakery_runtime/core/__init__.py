"""Shared by every capability of the runtime: AWS clients, the contract with the constructs,
errors, events, property parsing and WorkSpaces look-ups.
"""
