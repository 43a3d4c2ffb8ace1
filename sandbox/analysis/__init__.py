"""Reading results: metrics, grouping, statistics, comparisons and their warnings, verdicts,
reports and plots.

Depends on `sandbox.results.model` only (and the pure data modules its load section is made of):
never on measuring, driving load, the server or config.
"""
