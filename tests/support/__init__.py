"""Helpers shared by the test suite and the benchmarks: real servers, multi-process races."""
