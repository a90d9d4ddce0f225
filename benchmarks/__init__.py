"""Side-by-side benchmarks: etl against the naive way and the raw engine, in one run."""
