"""Many runs: an experiment's definition and execution (`definition`), its manifest of planned
runs (`manifest`) and resuming one that was interrupted (`resume`)."""
