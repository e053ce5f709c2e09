"""provenance-workbook's helper package: one folder per method over a small shared core.

``provlib.core`` (shared machinery), ``provlib.attribution``, ``provlib.watermark``, ``provlib.trainprove``;
``provlib.presets`` composes every section's configuration; ``python -m provlib`` runs the notebooks.
"""
