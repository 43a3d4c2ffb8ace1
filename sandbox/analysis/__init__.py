"""Reading results: metrics, grouping, statistics, comparisons and their warnings, verdicts,
reports and plots.

Depends on `sandbox.results` (and the pure data modules its load section is made of), the flags'
spellings (`sandbox.config.flag_names`, for the commands that reproduce a run) and
`sandbox.units`: never on measuring, driving load, the server or the rest of config.
"""
