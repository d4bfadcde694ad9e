"""Helpers shared by the test suite and the benchmarks: real servers, git repositories,
multi-process races."""
