import sys

from .ctrl_c import CTRL_C

CTRL_C.install()  # before anything slow loads: see ctrl_c.py
from .cli import main  # noqa: E402

sys.exit(main())
