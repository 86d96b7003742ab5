"""Drift monitoring: reference statistics, Evidently drift runs and their results."""
