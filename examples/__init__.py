"""Example services to run under the sandbox with `sandbox run --app` or `--cmd`."""
