"""Benchmarks of bcjax (run as scripts; never timed in tests)."""
