"""``python -m textgym.study`` (see :mod:`textgym.study`)."""
import sys

from textgym.study.cli import main

sys.exit(main())
