"""Driving load: Locust as a subprocess (never imported here), and reading its statistics."""
