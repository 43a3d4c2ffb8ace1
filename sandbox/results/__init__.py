"""One run's result and its files: the result model (`model`) and its sections by concept (what the
run ran under: `conditions`; what it measured over time: `sampling`; its headline figures:
`summary`; what releasing memory did: `releases`; what was in the heap: `heap`; the limits
checked: `thresholds`), their one serialisation and shape check (`shapes`), the files read and
written (`files`), where results are kept (`storage`) and the checkpoints of a run in progress
(`checkpoints`)."""
