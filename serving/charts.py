"""Chart geometry for the pages: plain numbers the templates draw as inline SVG.

No JavaScript library and no image files: the templates turn these shapes into `<rect>`s and
`<text>`s, so every label goes through Jinja's autoescaping like any other text on the page.
Coordinates are in SVG user units; widths are chosen for a ~640px column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from samepage.definitions import Definitions
from samepage.values import sigmoid
from serving.explain import formatter as value_formatter  # the explanation's own wording of a value
from serving.report_schemas import Calibration, Disqualifications, FunnelStep, SlaOut

WATERFALL_FACTORS = 8
AXIS_TOPS = (0.1, 0.2, 0.4, 0.6, 0.8, 1.0)
PALETTE = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899", "#84cc16", "#64748b", "#a16207"]


@dataclass
class Step:
    label: str
    detail: str
    start: float  # probability before this step
    end: float  # probability after it
    kind: str  # base | up | down | total
    note: str  # what the bar says, e.g. "+12 pts"
    tooltip: str = ""

    @property
    def low(self) -> float:
        return min(self.start, self.end)

    @property
    def high(self) -> float:
        return max(self.start, self.end)


@dataclass
class Waterfall:
    steps: list[Step]
    threshold: float
    score: float


def waterfall(
    defs: Definitions, explanation: dict[str, Any], score: float, threshold: float, top: int = WATERFALL_FACTORS
) -> Waterfall:
    """From a typical lead (the base value) to this lead's score, factor by factor.

    Each bar moves the likelihood by the factor's exact log-odds push, applied in the order of
    the explanation (largest first); the factors beyond `top` are one combined bar, so the last
    bar ends exactly at `logit(score)`.
    """
    base = float(explanation["base_value"])
    contributions = explanation["contributions"]
    steps = [Step("Starting point", "a typical lead", 0.0, sigmoid(base), "base", f"{sigmoid(base):.0%}")]
    z = base
    shown = [c for c in contributions if abs(c["contribution"]) > 0][:top]
    for c in shown:
        before, z = sigmoid(z), z + float(c["contribution"])
        after = sigmoid(z)
        steps.append(
            Step(
                str(c["label"]),
                value_formatter(defs, c["feature"])(c["value"]),
                before,
                after,
                "up" if c["contribution"] > 0 else "down",
                _points(after - before),
                f"{c['contribution']:+.3f} log-odds",
            )
        )
    rest = [c for c in contributions if c not in shown]
    rest_sum = sum(float(c["contribution"]) for c in rest)
    if rest and abs(rest_sum) > 1e-12:
        before, z = sigmoid(z), z + rest_sum
        after = sigmoid(z)
        n = len(rest)
        steps.append(
            Step(f"{n} other factor{'s' if n != 1 else ''}", "combined", before, after,
                 "up" if rest_sum > 0 else "down", _points(after - before), f"{rest_sum:+.3f} log-odds")  # fmt: skip
        )
    steps.append(Step("SQL likelihood", "this lead", 0.0, score, "total", f"{score:.0%}"))
    return Waterfall(steps, threshold, score)


def _points(delta: float) -> str:
    pts = delta * 100.0
    if abs(pts) < 0.05:
        return "±0 pts"
    return f"{pts:+.1f} pts" if abs(pts) < 10 else f"{pts:+.0f} pts"


@dataclass
class FunnelBar:
    key: str
    name: str
    owner: str
    leads: int
    width: float  # share of the widest bar, 0..1
    rate_from_previous: float | None
    rate_from_first: float | None


def funnel_bars(steps: list[FunnelStep]) -> list[FunnelBar]:
    top = max((s.leads for s in steps), default=0) or 1
    return [FunnelBar(s.key, s.name, s.owner, s.leads, s.leads / top, s.rate_from_previous, s.rate_from_first) for s in steps]


@dataclass
class Segment:
    key: str
    label: str
    count: int
    x: float  # 0..1 of the bar area
    width: float
    color: str


@dataclass
class StackedRow:
    label: str
    total: int
    of: int  # the denominator shown beside the bar (e.g. leads from the source)
    segments: list[Segment] = field(default_factory=list)


def disqualification_rows(dq: Disqualifications) -> tuple[list[StackedRow], list[Segment]]:
    """One stacked bar per source (reasons as segments) and the legend, in the definitions' order."""
    colors = {r.key: PALETTE[i % len(PALETTE)] for i, r in enumerate(dq.reasons)}
    widest = max((r.disqualified for r in dq.by_source), default=0) or 1
    rows = []
    for src in dq.by_source:
        row = StackedRow(src.source, src.disqualified, src.leads)
        x = 0.0
        for r in dq.reasons:
            n = src.by_reason.get(r.key, 0)
            if n:
                w = n / widest
                row.segments.append(Segment(r.key, r.label, n, x, w, colors[r.key]))
                x += w
        rows.append(row)
    legend = [Segment(r.key, r.label, 0, 0.0, 0.0, colors[r.key]) for r in dq.reasons]
    return rows, legend


def sla_segments(sla: SlaOut) -> list[Segment]:
    parts = [
        ("within_sla", f"Followed up within {sla.follow_up_hours:g} h", sla.within_sla, "#16a34a"),
        ("late", "Followed up late", sla.late, "#f59e0b"),
        ("not_followed_up", "Never followed up", sla.not_followed_up, "#dc2626"),
        ("pending", "Still inside the SLA", sla.pending, "#94a3b8"),
    ]
    total = sum(p[2] for p in parts) or 1
    out, x = [], 0.0
    for key, label, n, color in parts:
        out.append(Segment(key, label, n, x, n / total, color))
        x += n / total
    return out


@dataclass
class CalibrationBar:
    low: float
    high: float
    leads: int
    predicted: float | None
    actual: float | None


def calibration_bars(cal: Calibration) -> tuple[list[CalibrationBar], float]:
    """Bands and the y-axis top (the smallest of AXIS_TOPS that holds every rate)."""
    bars = [CalibrationBar(b.low, b.high, b.leads, b.predicted, b.actual) for b in cal.bands]
    highest = max((v for b in bars for v in (b.predicted, b.actual) if v is not None), default=0.0)
    top = next(t for t in AXIS_TOPS if highest <= t + 1e-9)  # quarters of these are round numbers
    return bars, top


def duration(hours: float | None) -> str:
    """Hours as people say them: 45 min, 11 h, 6.1 days."""
    if hours is None:
        return "–"
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h" if hours < 10 else f"{hours:.0f} h"
    days = hours / 24.0
    return f"{days:.1f} days" if days < 10 else f"{days:.0f} days"


def percent(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"
