"""Imported at start-up by every Python whose PYTHONPATH holds this folder: `import tensorflow` fails.

xdist workers and subprocesses inherit PYTHONPATH, so they are covered too.
"""

import sys

sys.modules["tensorflow"] = None  # an ImportError for `import tensorflow` and everything under it
