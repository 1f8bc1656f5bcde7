"""Benchmarks behind ``tada bench``: speed (train step), accuracy (digits suite), visualisation."""
