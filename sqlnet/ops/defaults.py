"""Constants the command line shows before anything heavy is imported."""

from __future__ import annotations

DEFAULT_TOLERANCE = 1e-9
EXAMPLES = {"post": "02_example_post.sql"}
