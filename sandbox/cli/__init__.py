"""The `sandbox` command: the click group and its error handling (`main`), one module per
command (`commands/`), the flag table (`flags`), how a command that runs servers begins and ends
(`lifecycle`) and the progress lines of runs (`progress`)."""
