"""Builders shared by the tests, the speed scripts (``benchmarks/speed/``) and the demo:
tiny random CLIPs and SigLIPs saved exactly like real ones (:mod:`testkit.tiny`,
:mod:`testkit.tiny_siglip`) and synthetic prepared catalogues (:mod:`testkit.synthetic`).

Not shipped (``pyproject.toml`` packages only evalsuite, finetune and dashboards): the
library never imports it. Importable from the repository root (pytest puts the root on
``sys.path`` through ``pythonpath`` in ``pyproject.toml``).
"""
