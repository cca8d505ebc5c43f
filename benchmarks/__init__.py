"""Measurements (see each script's docstring); a package so tests can import their functions."""
