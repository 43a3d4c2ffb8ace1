"""The `sandbox` command: the click group and its commands (`main`), the flag table (`flags`) and
a run's progress lines (`progress`)."""
