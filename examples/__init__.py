"""Runnable examples of the suite, outside the shipped packages (``make demo`` runs
``python -m examples.demo`` from the repository root)."""
