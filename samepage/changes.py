"""What a proposed definitions file changes, in words both teams read, and whether models must be retrained.

Pure: two loaded `Definitions` in, sentences out. `describe_changes` walks every part of the file
(stages, label, ICP, MQL rule, SLA and capacity, event types, features, points, changelog, and any
part it does not know by name, such as grades); `retrain_reasons` compares the parts the model's
fingerprint digests (`Definitions.bound_parts`) and names each one that moved. `Preview` is the
answer of `samepage definitions preview` and the `/definitions` page; `training.impact` fills its
expected-MQL figures from the champion's out-of-time predictions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel

from samepage.definitions import Criterion, Definitions, Feature

# Parts described by name below; any other field of `Definitions` gets the generic description.
NAMED = {"version", "name", "owners", "changelog", "stages", "label", "icp", "mql", "sla", "event_types", "features", "points"}
PART_NAMES = {
    "funnel": "the funnel stages (their keys and order)",
    "label": "the label (target stage, window, as-of stage)",
    "icp": "the ideal-customer profile (the ICP-match features read it)",
    "event_types": "the event types (the engagement features count them)",
    "features": "the model features (what they read and how)",
}


@dataclass(frozen=True)
class Outlook:
    """The MQL rule of one definitions file on the champion's out-of-time predictions."""

    threshold: float
    capacity_per_week: int
    share_of_leads: float
    expected_mql_per_week: float
    expected_sql_rate: float
    capacity_share: float  # expected MQLs a week / sales capacity a week


@dataclass(frozen=True)
class Preview:
    """`samepage definitions preview`: the diff, the retrain verdict and, when a champion has
    out-of-time predictions, the expected MQLs a week under the current and the proposed file."""

    current_version: str
    proposed_version: str
    proposed_source: str
    changes: list[str]
    retrain_reasons: list[str]
    current: Outlook | None = None
    proposed: Outlook | None = None
    basis: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def retrain_needed(self) -> bool:
        return bool(self.retrain_reasons)

    @property
    def verdict(self) -> str:
        """One sentence: "no retrain needed" or "retrain needed" and why."""
        if not self.retrain_reasons:
            return "No retrain needed: the label and features the champion was trained on are unchanged."
        return "Retrain needed: " + "; ".join(self.retrain_reasons) + "."

    def as_json(self) -> dict[str, Any]:
        """The contract's keys (`retrain_needed`, `changes`, `expected_mql_per_week`, `expected_sql_rate`,
        `capacity_share`; null without champion predictions), then the details."""
        p = self.proposed
        return {
            "retrain_needed": self.retrain_needed,
            "changes": list(self.changes),
            "expected_mql_per_week": p.expected_mql_per_week if p else None,
            "expected_sql_rate": p.expected_sql_rate if p else None,
            "capacity_share": p.capacity_share if p else None,
            "retrain_reasons": list(self.retrain_reasons),
            "verdict": self.verdict,
            "current_version": self.current_version,
            "proposed_version": self.proposed_version,
            "proposed_source": self.proposed_source,
            "current": asdict(self.current) if self.current else None,
            "proposed": asdict(p) if p else None,
            "basis": self.basis,
            "notes": list(self.notes),
        }


# -- the retrain verdict ----------------------------------------------------------------------
def retrain_reasons(current: Definitions, proposed: Definitions) -> list[str]:
    """One sentence per part of the fingerprint that differs; [] when a champion trained under
    `current` can serve `proposed` as it is."""
    if current.fingerprint == proposed.fingerprint:
        return []
    before, after = current.bound_parts, proposed.bound_parts
    reasons = []
    for part, name in PART_NAMES.items():
        if before[part] == after[part]:
            continue
        detail = _bound_detail(part, current, proposed)
        reasons.append(f"{name} changed" + (f" ({detail})" if detail else ""))
    return reasons


def _bound_detail(part: str, current: Definitions, proposed: Definitions) -> str:
    if part == "features":
        strip = {"label", "group"}
        a = {f.key: f.model_dump(mode="json", exclude=strip) for f in current.features}
        b = {f.key: f.model_dump(mode="json", exclude=strip) for f in proposed.features}
        said = _keyed(a, b, "feature")
        if not said and list(a) != list(b):
            said = ["feature order changed"]
        return "; ".join(said)
    if part == "funnel":
        return f"{' → '.join(part_keys(current))} becomes {' → '.join(part_keys(proposed))}"
    if part == "event_types":
        a = {e.key: e.model_dump(mode="json") for e in current.event_types}
        b = {e.key: e.model_dump(mode="json") for e in proposed.event_types}
        return "; ".join(_keyed(a, b, "event type"))
    if part == "label":
        return "; ".join(_fields(current.label, proposed.label, "label"))
    return "; ".join(_fields(current.icp, proposed.icp, "ICP"))


def part_keys(defs: Definitions) -> list[str]:
    return [s.key for s in defs.funnel]


# -- the diff in words ------------------------------------------------------------------------
def describe_changes(current: Definitions, proposed: Definitions) -> list[str]:
    """Every difference between the two files, one sentence each, in the order of the file."""
    out: list[str] = []
    if current.version != proposed.version:
        out.append(f"Version {current.version} → {proposed.version}.")
    if current.name != proposed.name:
        out.append(f"Name “{current.name}” → “{proposed.name}”.")
    for team in ("marketing", "sales"):
        a, b = current.owners[team], proposed.owners[team]
        if a != b:
            out.append(f"{team.capitalize()} owner {a.name} ({a.role}) → {b.name} ({b.role}).")
    out += _stages(current, proposed)
    out += [f"{s}." for s in _fields(current.label, proposed.label, "Label")]
    out += [f"{s}." for s in _fields(current.icp, proposed.icp, "ICP")]
    out += _mql(current, proposed)
    out += [f"{s}." for s in _fields(current.sla, proposed.sla, "SLA")]
    if current.sla.capacity.mqls_per_week != proposed.sla.capacity.mqls_per_week:
        out.append(
            f"Sales capacity {current.sla.capacity.mqls_per_week:,} → {proposed.sla.capacity.mqls_per_week:,} MQLs a week."
        )
    a_ev = {e.key: e.model_dump(mode="json") for e in current.event_types}
    b_ev = {e.key: e.model_dump(mode="json") for e in proposed.event_types}
    out += [f"{s.capitalize()}." for s in _keyed(a_ev, b_ev, "event type")]
    out += _features(current, proposed)
    if current.points != proposed.points:
        n_a = len(current.points.rules) if current.points else 0
        n_b = len(proposed.points.rules) if proposed.points else 0
        out.append(f"Points rules changed ({n_a} → {n_b} rules): the baseline and the cold-start scorer follow them.")
    for name in type(current).model_fields:
        if name not in NAMED and name != "digest" and getattr(current, name) != getattr(proposed, name):
            before, after = _show(getattr(current, name)), _show(getattr(proposed, name))
            out.append(f"{name.replace('_', ' ').capitalize()}: {before} → {after}.")
    known = {(e.version, e.date) for e in current.changelog}
    for entry in proposed.changelog:
        if (entry.version, entry.date) not in known:
            signed = ", ".join(entry.by) if entry.by else "nobody yet"
            unsigned = [t for t in ("marketing", "sales") if entry.by and t not in entry.by]
            signed += f"; not yet by {' and '.join(unsigned)}" if unsigned else ""
            out.append(f"Changelog adds {entry.version} ({entry.date}, signed by {signed}): {entry.changes}")
    return out


def _stages(current: Definitions, proposed: Definitions) -> list[str]:
    a = {s.key: s for s in current.stages}
    b = {s.key: s for s in proposed.stages}
    out = [f"Stage {b[k].name} ({k}) added, owned by {b[k].owner}: {b[k].entry}" for k in b if k not in a]
    out += [f"Stage {a[k].name} ({k}) removed." for k in a if k not in b]
    for key in (k for k in b if k in a):
        s, t = a[key], b[key]
        if s.name != t.name:
            out.append(f"Stage {key}: name “{s.name}” → “{t.name}”.")
        if s.owner != t.owner:
            out.append(f"Stage {t.name}: owner {s.owner} → {t.owner}.")
        if s.entry != t.entry:
            out.append(f"Stage {t.name}: entry criteria “{s.entry}” → “{t.entry}”.")
        if s.off_funnel != t.off_funnel:
            out.append(f"Stage {t.name}: {'now off the funnel' if t.off_funnel else 'now on the funnel'}.")
        ra = {r.key: r.label for r in s.reasons}
        rb = {r.key: r.label for r in t.reasons}
        out += [f"Stage {t.name}: reason “{rb[r]}” ({r}) added." for r in rb if r not in ra]
        out += [f"Stage {t.name}: reason “{ra[r]}” ({r}) removed." for r in ra if r not in rb]
        out += [f"Stage {t.name}: reason {r} “{ra[r]}” → “{rb[r]}”." for r in rb if r in ra and ra[r] != rb[r]]
    shared_a = [k for k in a if k in b]
    shared_b = [k for k in b if k in a]
    if shared_a != shared_b:
        out.append(f"Stage order {' → '.join(shared_a)} becomes {' → '.join(shared_b)}.")
    return out


def _mql(current: Definitions, proposed: Definitions) -> list[str]:
    out = []
    ta, tb = current.mql.threshold, proposed.mql.threshold
    if ta != tb:
        more = "lower: more leads pass" if tb < ta else "higher: fewer leads pass"
        out.append(f"MQL threshold {ta:g} → {tb:g} ({more}).")
    a = {c.key: c for c in current.mql.criteria}
    b = {c.key: c for c in proposed.mql.criteria}
    out += [f"MQL criterion added: “{b[k].description}” ({describe_criterion(b[k])})." for k in b if k not in a]
    out += [f"MQL criterion removed: “{a[k].description}” ({describe_criterion(a[k])})." for k in a if k not in b]
    for key in (k for k in b if k in a and a[k] != b[k]):
        out.append(
            f"MQL criterion {key}: “{a[key].description}” ({describe_criterion(a[key])}) → "
            f"“{b[key].description}” ({describe_criterion(b[key])})."
        )
    return out


def describe_criterion(c: Criterion) -> str:
    """A criterion's rule in words: `seniority is not Student; met when missing`."""
    rules = []
    if c.in_ is not None:
        rules.append(f"{c.field} is one of {', '.join(map(str, c.in_))}")
    if c.not_in is not None:
        rules.append(f"{c.field} is not {' or '.join(map(str, c.not_in))}")
    if c.min is not None:
        rules.append(f"{c.field} at least {c.min:g}")
    if c.max is not None:
        rules.append(f"{c.field} at most {c.max:g}")
    return " and ".join(rules) + f"; {'met' if c.if_missing == 'met' else 'not met'} when missing"


def _features(current: Definitions, proposed: Definitions) -> list[str]:
    a = {f.key: f for f in current.features}
    b = {f.key: f for f in proposed.features}
    out = [f"Feature added: “{b[k].label}” ({k}, {describe_feature(b[k])})." for k in b if k not in a]
    out += [f"Feature removed: “{a[k].label}” ({k})." for k in a if k not in b]
    for key in (k for k in b if k in a and a[k] != b[k]):
        said = _fields(a[key], b[key], f"Feature {key}")
        out += [f"{s}." for s in said]
    shared_a = [k for k in a if k in b]
    shared_b = [k for k in b if k in a]
    if shared_a != shared_b:
        out.append("Feature order changed.")
    return out


def describe_feature(f: Feature) -> str:
    """What a feature reads, in a few words: `count of demo_request over 90 days`."""
    if f.kind == "event_count":
        return f"count of {f.event_type} over {f.window_days} days"
    if f.kind == "distinct_channels":
        return f"channels engaged over {f.window_days} days"
    if f.kind == "attribute":
        return f"{f.type} attribute {f.column}"
    if f.kind == "icp_match":
        return f"ICP match on {f.match}"
    return f.kind


def _keyed(a: dict[str, Any], b: dict[str, Any], what: str) -> list[str]:
    out = [f"{what} {k} added" for k in b if k not in a]
    out += [f"{what} {k} removed" for k in a if k not in b]
    for key in (k for k in b if k in a and a[k] != b[k]):
        moved = [f"{f} {_show(a[key].get(f))} → {_show(b[key].get(f))}" for f in b[key] if a[key].get(f) != b[key].get(f)]
        out.append(f"{what} {key}: {', '.join(moved)}")
    return out


def _fields(a: BaseModel, b: BaseModel, where: str) -> list[str]:
    """`<where> <field> <old> → <new>` for each top-level field that differs (nested models flattened once)."""
    out = []
    for name in type(a).model_fields:
        x, y = getattr(a, name), getattr(b, name)
        if x == y:
            continue
        if isinstance(x, BaseModel) and isinstance(y, BaseModel):
            out += _fields(x, y, f"{where} {name.replace('_', ' ')}")
        elif isinstance(x, list) and isinstance(y, list) and all(isinstance(v, str) for v in [*x, *y]):
            added, removed = [v for v in y if v not in x], [v for v in x if v not in y]
            moved = [f"adds {', '.join(added)}"] if added else []
            moved += [f"removes {', '.join(removed)}"] if removed else []
            out.append(f"{where} {name.replace('_', ' ')}: {'; '.join(moved) or 'reordered'}")
        else:
            out.append(f"{where} {name.replace('_', ' ')} {_show(x)} → {_show(y)}")
    return out


def _show(value: Any) -> str:
    if isinstance(value, BaseModel):
        return str(value.model_dump(mode="json", by_alias=True, exclude_none=True))
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
