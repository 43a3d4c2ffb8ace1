"""What a run is asked to do: the settings table and YAML (`settings`), a run's resolved spec
(`run_spec`), checks of single values (`values`), and the server's own environment settings
(`server_settings`).

Kept empty on purpose: the measured server imports `server_settings` and must not load YAML.
"""
