"""Training from Scratch: Initialization & Regularization -- the lab as an automated, gated report.

    python -m lab run all --profile quick && python -m lab report
"""

from pathlib import Path

# Paths are anchored at the project root, never the working directory.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = PROJECT_ROOT / "report"
TEMPLATES_DIR = PROJECT_ROOT / "templates"

__all__ = ["PROJECT_ROOT", "DEFAULT_OUT", "TEMPLATES_DIR"]
