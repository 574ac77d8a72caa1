"""A loss curve drawn in text, for `sqlnet runs show`."""

from __future__ import annotations

import math


def text_plot(points: list[tuple[int, float]], width: int = 60, height: int = 12) -> list[str]:
    """The loss per epoch as a terminal plot; a log scale when it spans more than 100x."""
    if not points:
        return ["(no losses recorded)"]
    values = [v for _, v in points]
    log = min(values) > 0 and max(values) / min(values) > 100
    ys = [math.log10(v) for v in values] if log else values
    lo, hi = min(ys), max(ys)
    span = (hi - lo) or 1.0
    columns = min(width, len(points))
    grid = [[" "] * columns for _ in range(height)]
    for c in range(columns):
        # each column shows the epochs that fall into it by their mean
        chunk = ys[c * len(ys) // columns : max((c + 1) * len(ys) // columns, c * len(ys) // columns + 1)]
        y = sum(chunk) / len(chunk)
        grid[height - 1 - round((y - lo) / span * (height - 1))][c] = "*"
    label = (lambda y: f"{10**y:.4g}") if log else (lambda y: f"{y:.4g}")
    lines = []
    for r, row in enumerate(grid):
        y = hi - r * span / (height - 1)
        lines.append(f"{label(y):>11} |{''.join(row)}")
    lines.append(" " * 12 + "+" + "-" * columns)
    lines.append(" " * 13 + f"epoch {points[0][0]}" + " " * max(1, columns - 16) + f"epoch {points[-1][0]}")
    if log:
        lines.append(" " * 13 + "(log scale)")
    return lines
