"""The operating system's side: child processes and their process groups (`processes`), the
lifeline that takes a run's servers down with the harness (`lifeline`), whether a recorded
process is still the one it was (`liveness`), loopback addresses and free ports (`loopback`),
files written whole or not at all (`atomic`, `state_file`).

Imports nothing of the sandbox but `sandbox.errors`.
"""
