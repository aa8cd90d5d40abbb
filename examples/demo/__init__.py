"""The self-contained demo: procedural data sets and the `make demo` story (see README.md)."""
