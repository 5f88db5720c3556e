"""The budgets chart, drawn on the server as inline SVG (no script): one stacked bar per partnership.

Each bar is the partnership's allocation split into paid, held and available, on one scale for all
partnerships (the largest allocation fills the width). The template (officer_budgets.html) draws the
rectangles this module places, with a <title> and <desc> for the whole figure and a <title> per segment;
the same figures are in the table beside it, so nothing is known only from a colour or a length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clients.money import format_eur

LABEL_WIDTH = 200  # room for the partnership's name left of its bar
BAR_WIDTH = 520
ROW_HEIGHT = 30
BAR_HEIGHT = 18
TOP = 8
# The parts of an allocation, in the order they are drawn, each with its CSS class (colours in cx.css).
PARTS = (
    ("paid_cents", "paid", "bar-paid"),
    ("held_cents", "held", "bar-held"),
    ("available_cents", "available", "bar-free"),
)


@dataclass(frozen=True)
class Segment:
    x: float
    width: float
    css: str
    title: str


@dataclass(frozen=True)
class Bar:
    y: float
    label: str
    label_y: float
    segments: list[Segment] = field(default_factory=list)


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    description: str
    label_width: int = LABEL_WIDTH
    bar_height: int = BAR_HEIGHT


def budget_chart(budgets: list[dict[str, Any]]) -> Chart:
    """The chart of `budgets` (GET /budgets rows with a `name`), one bar per partnership, in their order."""
    largest = max((b["allocated_cents"] for b in budgets), default=0) or 1
    bars: list[Bar] = []
    for index, budget in enumerate(budgets):
        y = TOP + index * ROW_HEIGHT
        x = float(LABEL_WIDTH)
        segments = []
        for key, word, css in PARTS:
            amount = max(int(budget[key]), 0)
            width = BAR_WIDTH * amount / largest
            if width > 0:
                segments.append(Segment(x, round(width, 2), css, f"{budget['name']}: {word} {format_eur(amount)}"))
            x += width
        label = str(budget["name"])
        bars.append(Bar(y, label if len(label) <= 28 else label[:27] + "…", y + BAR_HEIGHT - 4, segments))
    total = sum(b["allocated_cents"] for b in budgets)
    description = (
        f"{len(budgets)} partnerships, {format_eur(total)} allocated in total. Each bar is one partnership's "
        "allocation split into paid, held and available; the table below gives the same figures."
    )
    height = TOP * 2 + max(len(budgets), 1) * ROW_HEIGHT
    return Chart(LABEL_WIDTH + BAR_WIDTH + 10, height, bars, description)
