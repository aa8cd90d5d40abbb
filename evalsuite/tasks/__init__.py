"""Task runners: (task spec, items, shared embeddings) -> metrics and per-item rows.

One small module per task type (zeroshot, retrieval, probes, stats) on what
:mod:`evalsuite.tasks.base` defines, registered by the ``type`` a benchmark YAML gives in
:mod:`evalsuite.tasks.registry`; every task reads the same image embeddings, computed once per
benchmark by the runner.
"""
