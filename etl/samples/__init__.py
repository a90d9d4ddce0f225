"""Deterministic generators of sample inputs, so `make etl` does real work offline."""
