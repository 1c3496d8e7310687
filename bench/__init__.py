"""Benchmarks of p2w-search (not part of the test suite): ``bench/run`` runs them all."""
