"""One module per `sandbox` command, each a click command that `sandbox.cli.main` adds to the
group."""
