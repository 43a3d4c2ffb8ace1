"""Scripts that measure the instrument itself; run each as `python benchmarks/NAME.py`."""
