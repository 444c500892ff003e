"""Benchmarks: snsync against the HTTPS sandbox with a latency profile, next to a naive script."""
