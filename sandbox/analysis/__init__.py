"""Reading results: metrics, grouping, statistics, comparisons and their warnings, verdicts,
reports and plots.

Depends on `sandbox.results` only: never on measuring, load or the server.
"""
