"""Measuring a server: launch it, sample it, drive its batches, check thresholds, write results."""
