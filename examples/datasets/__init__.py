"""Generators of bundled example data in the real datasets' formats."""
