"""The MQL verdict: the score against the threshold and each required criterion of the definitions.

A lead is an MQL when its score is at or above `mql.threshold` and every criterion is met (the rule
for one criterion is `samepage.criteria.check`, shared with the definitions preview); the
summary says so in one sentence and names each failed criterion with the value that failed it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from samepage.criteria import check
from samepage.definitions import Criterion, Definitions
from serving.explain import format_value


@dataclass(slots=True)
class CriterionResult:
    key: str
    description: str
    met: bool
    field: str
    value: Any


@dataclass(slots=True)
class Verdict:
    passed: bool
    threshold: float
    criteria: list[CriterionResult]
    summary: str
    shown: list[dict[str, Any]]  # the contract's criteria objects (`verdicts` shares them between leads)

    def as_dict(self) -> dict[str, Any]:
        """The contract's `mql` object."""
        return {"passed": self.passed, "threshold": self.threshold, "criteria": self.shown, "summary": self.summary}


def criterion_fields(defs: Definitions) -> list[str]:
    return [c.field for c in defs.mql.criteria]


def verdict(defs: Definitions, score: float, values: Mapping[str, Any]) -> Verdict:
    """`values` holds each criterion's field (a feature or lead attribute); absent means missing."""
    return verdicts(defs, [score], [values])[0]


def verdicts(defs: Definitions, scores: Sequence[float], values: Sequence[Mapping[str, Any]]) -> list[Verdict]:
    """`verdict` for many leads at once: each criterion is checked once per distinct value (a batch
    repeats a few seniorities and counts), the rest is per lead."""
    threshold = defs.mql.threshold
    # Results so far, per criterion and value; a result is never changed once made, so leads share them,
    # and leads with the same met/unmet pattern share the contract's criteria objects (a million in score --all).
    criteria: list[tuple[Criterion, dict[tuple[type, Any], CriterionResult]]] = [(c, {}) for c in defs.mql.criteria]
    shown: dict[tuple[bool, ...], list[dict[str, Any]]] = {}
    labels = {c.field: defs.field_label(c.field) for c in defs.mql.criteria}
    out: list[Verdict] = []
    for score, vals in zip(scores, values, strict=True):
        results: list[CriterionResult] = []
        for c, seen in criteria:
            value = vals.get(c.field)
            try:
                result = seen[(type(value), value)]
            except KeyError:
                result = seen[(type(value), value)] = CriterionResult(c.key, c.description, check(c, value), c.field, value)
            except TypeError:  # unhashable (a list): checked as it comes
                result = CriterionResult(c.key, c.description, check(c, value), c.field, value)
            results.append(result)
        pattern = tuple([r.met for r in results])
        objects = shown.get(pattern)
        if objects is None:
            objects = shown[pattern] = [{"key": r.key, "description": r.description, "met": r.met} for r in results]
        above = score >= threshold
        failed = [r for r in results if not r.met]
        summary = _summary(score, threshold, above, results, failed, labels)
        out.append(Verdict(above and not failed, threshold, results, summary, objects))
    return out


def _digits(score: float, threshold: float) -> int:
    """Two decimals, or as many more as it takes for the rounded score to stay on its side."""
    for digits in range(2, 7):
        shown = round(score, digits)
        if (shown >= threshold) == (score >= threshold) and (score == threshold or shown != round(threshold, digits)):
            return digits
    return 6


def shown_score(score: float, threshold: float) -> str:
    """The score as the summary shows it: rounded, but never onto the other side of the threshold."""
    return f"{score:.{_digits(score, threshold)}f}"


def shown_percent(score: float, threshold: float) -> str:
    """The score in percent as pages show it (35%), with a decimal where rounding would cross the threshold (34.9%)."""
    return f"{score * 100:.{max(0, _digits(score, threshold) - 2)}f}%"


def _summary(
    score: float,
    threshold: float,
    above: bool,
    results: list[CriterionResult],
    failed: list[CriterionResult],
    labels: Mapping[str, str],
) -> str:
    d = _digits(score, threshold)
    where = (
        f"the score {score:.{d}f} is at or above the threshold {threshold:.2f}"
        if above
        else f"the score {score:.{d}f} is below the threshold {threshold:.2f}"
    )
    if above and not failed:
        n = len(results)
        tail = "" if n == 0 else (" and its criterion is met" if n == 1 else f" and all {n} criteria are met")
        return f"MQL: {where}{tail}."
    if not failed:
        return f"Not an MQL: {where}."
    named = " and ".join(f"“{r.description}” ({labels[r.field]}: {format_value(_plain(r.value))})" for r in failed)
    joint = ", and it fails " if not above else ", but it fails "
    return f"Not an MQL: {where}{joint}{named}."


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
