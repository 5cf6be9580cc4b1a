"""The template's benchmarks, run from the repository's root as `python -m benchmarks.<name>`
(the Makefile's bench targets)."""
