"""Render the committed results into documents: ``python -m provlib report``.

Every number in ``docs/results.md``, ``docs/replications.md`` and the README's results block is computed here from
the tables in ``data/results/``; nothing is typed by hand. ``tests/test_report.py`` renders the committed tables and
fails when a document in the tree differs, so a hand edit or a stale table cannot land.

Rates from few models carry their counts and an exact (Clopper-Pearson) 95 % interval; means carry a t-interval.
``python -m provlib replicate`` scores another run's tables (another seed or machine) against the same headline
targets and adds one row per target to ``data/results/replications.csv``.
"""
from provlib.report.documents import (README_BEGIN, README_END, export_html, readme_block, render,  # noqa: F401
                                      replace_block, replicate, results_markdown)
from provlib.report.headline import TARGETS, Target, score_targets  # noqa: F401
from provlib.report.tables import (Tables, exact_interval, markdown_table, rate, t_interval,  # noqa: F401
                                   welch_interval)
