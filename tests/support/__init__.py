"""Real parts for tests and benchmarks: an X server, a broker process, a screen painter."""
