"""One run's result and its files: the model (`model`, `sections`), the shape checks of JSON read
back (`shapes`), where results are kept (`storage`) and the checkpoints of a run in progress
(`checkpoints`)."""
