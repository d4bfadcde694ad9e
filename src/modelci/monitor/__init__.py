"""Watching served versions: their training data's statistics (datastats), the captured
requests (captured), and drift between the two (drift, with the tests in stattests)."""
