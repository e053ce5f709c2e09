"""``python -m provlib``: the workbook's command line (see ``provlib.cli``)."""
from provlib.cli import main

main()
