"""Daily usage charts as inline SVG, drawn on the server: no script, no external file, readable by
screen readers through the table and the label that go with each chart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 720
HEIGHT = 160
MARGIN_LEFT = 44
MARGIN_BOTTOM = 18


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # shown as the bar's tooltip: "2031-03-01: 12 uses"


@dataclass(frozen=True, slots=True)
class Chart:
    """What the template draws: bars, the highest value for the axis, and the first and last day."""

    width: int
    height: int
    bars: tuple[Bar, ...]
    peak: int
    first: str
    last: str
    plot_left: int
    plot_bottom: int


def daily_chart(days: Sequence[tuple[str, int]], *, what: str = "uses") -> Chart:
    """Bars for (day, value) pairs in order; the value axis starts at zero."""
    peak = max((value for _, value in days), default=0)
    plot_width = WIDTH - MARGIN_LEFT
    plot_height = HEIGHT - MARGIN_BOTTOM
    step = plot_width / max(1, len(days))
    # A gap between bars while they are wide enough to show one.
    width = step * 0.8 if step >= 3 else step
    bars = []
    for index, (date, value) in enumerate(days):
        height = 0.0 if peak == 0 else plot_height * value / peak
        bars.append(
            Bar(
                x=round(MARGIN_LEFT + index * step, 2),
                y=round(plot_height - height, 2),
                width=round(width, 2),
                height=round(height, 2),
                label=f"{date}: {value} {what}",
            )
        )
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        bars=tuple(bars),
        peak=peak,
        first=days[0][0] if days else "",
        last=days[-1][0] if days else "",
        plot_left=MARGIN_LEFT,
        plot_bottom=plot_height,
    )


def dense(days: Sequence[str], sparse: dict[str, int]) -> list[tuple[str, int]]:
    """Every day of ``days`` with its value in ``sparse`` (0 when absent)."""
    return [(day, sparse.get(day, 0)) for day in days]
