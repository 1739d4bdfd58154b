"""Speed benchmarks against peer frameworks (benchmarks, not tests): see ``benchmarks/speed/README.md``."""
