"""The local runner behind ``./platform`` (never installed into an image): processes,
embedded PostgreSQL and the whole stack, used by ./platform, the tests and the benchmarks."""
