"""provenance-workbook's helper package: one folder per method over a small shared core.

``provlib.core`` (shared machinery), ``provlib.attribution``, ``provlib.watermark``, ``provlib.trainprove``;
``provlib.presets`` composes every section's configuration; ``python -m provlib`` runs the notebooks.
"""
import logging as _logging


class _TorchvisionFallbackNotice(_logging.Filter):
    """Drop transformers' notice that an image processor falls back to its PIL version without torchvision.

    Loading any Stable Diffusion pipeline names ``CLIPImageProcessor``; the workbook never uses it (images are
    preprocessed by provlib), and torchvision is not installed on purpose (its wheels do not import beside the CPU
    torch build), so the notice would only print in red in every notebook cell that loads a pipeline.
    """

    def filter(self, record: _logging.LogRecord) -> bool:
        return "requires torchvision (not installed)" not in record.getMessage()


_logging.getLogger("transformers.utils.import_utils").addFilter(_TorchvisionFallbackNotice())
