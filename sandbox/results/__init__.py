"""One run's result and its files: the model (`model`, its smaller sections in `sections`), the
headline figures recomputed from samples (`summary`), the files read and written (`files`), the
shape checks of JSON read back (`shapes`), where results are kept (`storage`) and the checkpoints
of a run in progress (`checkpoints`)."""
