"""``evalsuite report``: a Markdown report with PNG charts, for a pull request or an e-mail.

Reads the latest ``ok`` run of every model on every benchmark through :mod:`evalsuite.store`
and writes ``out_dir/report.md`` with the charts in ``out_dir/figures/``:

1. a plain-language paragraph per model: what it gained on the target benchmark (footwear),
   what fine-tuning cost elsewhere, every significant change and whether the gate passes;
2. a headline table, models as columns (baseline first), each other model followed by its
   change against the baseline and the verdict's marker (``▲`` better, ``▼`` worse, ``≈``
   tied, ``n/a`` not comparable, with the reason in a note);
3. per model, "Is the change real?": each gated metric's change with its paired 95%
   interval, adjusted p-value (Benjamini-Hochberg), minimal detectable difference and verdict;
4. charts: the primary score of each task per benchmark, per-class F1 of each zero-shot task,
   the gain/forgetting trade-off (WiSE-FT checkpoints joined by alpha) and training curves;
5. every metric per benchmark, the models, and provenance: data hash, benchmark hash, code
   version and time of each run, with a warning when compared runs scored different data.

Every verdict, count and marker comes from :mod:`evalsuite.verdicts` (one
:class:`~evalsuite.verdicts.ModelComparison` per model against the baseline, with the same
defaults as ``evalsuite compare``), so the report, the gate and the leaderboard agree; the
baseline is chosen by :func:`evalsuite.verdicts.choose_baseline`.

Each task has a **primary score** on a 0..1 scale: ``acc@1`` for zero-shot tasks, IR hits
over their maximum for retrieval tasks. Charts and the averages of the summary use it.
Figures are drawn with matplotlib's Agg canvas directly (no pyplot, no global backend);
every file is written to a temporary name first and renamed into place.

One module per part, each importing only modules listed before it, never this ``__init__``:
``data`` (ReportData and its lookups), ``load`` (read from the database), ``files``
(atomic writes, DPI), ``chart_style``, ``tables`` (Markdown tables), ``tradeoff`` (gain
against forgetting, WiSE-FT lines, their chart), ``charts`` (scores, F1 per class, training
curves), ``verdict_text`` (summaries, "Is the change real?"), ``provenance``,
``seed_section``, ``sweep`` and ``sweep_chart`` (``finetune sweep`` studies), ``figures``
(every chart drawn) and ``render`` (report.md in order, :func:`write_report`).
"""

from evalsuite.report.data import ModelEntry, ReportData, ReportError
from evalsuite.report.figures import Figures, draw_figures
from evalsuite.report.load import load_report_data
from evalsuite.report.render import render_markdown, write_report, write_report_files
from evalsuite.report.seed_section import seed_table_of, training_costs
from evalsuite.report.tradeoff import tradeoff_point, wise_lines
from evalsuite.report.verdict_text import VERDICT_TABLE_TAG

__all__ = [
    "VERDICT_TABLE_TAG",
    "Figures",
    "ModelEntry",
    "ReportData",
    "ReportError",
    "draw_figures",
    "load_report_data",
    "render_markdown",
    "seed_table_of",
    "tradeoff_point",
    "training_costs",
    "wise_lines",
    "write_report",
    "write_report_files",
]
