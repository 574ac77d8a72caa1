"""The names of the layouts, without the layouts: what the command line offers, light to import."""

from __future__ import annotations

LAYOUT_NAMES = ("long", "wide")
