"""For operators: the command line (status, watch, report) and the template's one-time
registration.
"""
