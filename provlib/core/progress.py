"""Progress bars that work in both places the workbook runs.

In JupyterLab, ``tqdm.auto`` draws widgets. Headless (``python -m provlib run`` sets ``PROVLIB_HEADLESS=1`` for its
kernels), widgets would be invisible, so bars are plain text on stderr, refreshed at most every
``PROVLIB_PROGRESS_SECONDS`` (default 20) seconds: papermill relays them, so a long notebook shows what it is doing.
"""
from __future__ import annotations

import os

from tqdm import tqdm as text_tqdm
from tqdm.auto import tqdm as auto_tqdm


def headless() -> bool:
    return os.environ.get("PROVLIB_HEADLESS") == "1"


def tqdm(*args, **kwargs):
    """``tqdm.auto.tqdm`` in a notebook front end, a sparse text bar when run headless."""
    if headless():
        kwargs["mininterval"] = max(kwargs.get("mininterval", 0), float(os.environ.get("PROVLIB_PROGRESS_SECONDS", 20)))
        kwargs.setdefault("ascii", True)
        return text_tqdm(*args, **kwargs)
    return auto_tqdm(*args, **kwargs)
