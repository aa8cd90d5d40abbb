"""Score fashion CLIP models on every benchmark; store results in DuckDB."""

__version__ = "0.1.0"
