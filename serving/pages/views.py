"""What the templates read: the lead record and the funnel report as plain dicts, in the definitions' words.

No requests and no I/O here: the routes load a record or a report and these functions shape it
for lead.html and report.html (labels, stage path, dates in UTC, chart geometry).
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any
from urllib.parse import urlencode

import pandas as pd

from samepage.definitions import Definitions
from samepage.points import describe_rules, team_points
from samepage.values import utc_timestamp
from serving import charts
from serving.explain import format_value
from serving.mql import shown_percent, shown_score
from serving.report_schemas import FunnelReport
from serving.topass import after_words, nothing_note, step_note, stuck_note

# The verbs sales clicks on; any other stage of the definitions is under "Other stages".
VERBS = {"sal": "Accept (SAL)", "sql": "Qualify (SQL)", "recycled": "Recycle"}
DISQUALIFIED = "disqualified"
PERSON = ("job_title", "seniority", "department")
COMPANY = ("industry", "employees", "annual_revenue", "country")


def flash_message(
    defs: Definitions, recorded: str | None, reason: str | None, again: str | None, rescored: str | None = None
) -> str | None:
    """The note above the record after a redirect: what was recorded, or that the lead was scored again."""
    if rescored:
        return "Scored again with the current champion and the latest engagement."
    if not recorded:
        return None
    try:
        stage = defs.stage(recorded)
    except KeyError:
        return None
    labels = {r.key: r.label for r in stage.reasons}
    text = stage.name + (f" — {labels[reason]}" if reason in labels else "")
    return f"This stage change was already recorded: {text}." if again else f"Recorded: {text}."


def lead_context(defs: Definitions, record: dict[str, Any], result: dict[str, Any] | None, no_score: str) -> dict[str, Any]:
    """Everything lead.html shows, in the definitions' words."""
    attrs = dict(record["attributes"])
    if not attrs and result is not None:  # a lead scored from request attributes: show what it was scored with
        attrs = {c["feature"]: c["value"] for c in result["explanation"]["contributions"] if _is_attribute(defs, c["feature"])}
    stages = [_stage_view(defs, s) for s in record["stages"]]
    current = None
    if record["stages"]:
        try:
            current = defs.stage(record["stages"][-1]["stage"])
        except KeyError:
            current = None
    target = defs.stage(defs.label.target_stage)
    disqualify = defs.stage(DISQUALIFIED) if any(s.key == DISQUALIFIED for s in defs.stages) else None
    keys = {s.key for s in defs.stages}
    actions = [{"key": k, "verb": v, "entry": defs.stage(k).entry} for k, v in VERBS.items() if k in keys]
    skip = {*VERBS, DISQUALIFIED, defs.label.as_of_stage}
    first_rank = defs.funnel_rank(defs.label.as_of_stage or "") or 0
    more = [s for s in defs.stages if s.key not in skip and (defs.funnel_rank(s.key) or 0) >= first_rank]
    scored_at = pd.Timestamp(result["scored_at"]) if result else None
    next_step = _next_step(defs, result)
    return {
        "path": _path(defs, [s["stage"] for s in record["stages"]]),
        "reached": _reached_target(defs, record["stages"]),
        "lead_id": record["lead_id"],
        "headline": _headline(attrs, record["lead_id"]),
        "subtitle": " · ".join(_subtitle(attrs)),
        "sections": _sections(defs, attrs),
        "stages": stages,
        "events": [{**e, "when": _when(pd.Timestamp(e["occurred_at"]))} for e in record.get("events", [])],
        "current": current,
        "result": result,
        "no_score_reason": no_score,
        "wf": charts.waterfall(defs, result["explanation"], result["score"], result["mql"]["threshold"]) if result else None,
        "scored_at_iso": scored_at.isoformat() if scored_at is not None else "",
        "scored_at_text": _when(scored_at) if scored_at is not None else "",
        "target_name": target.name,
        "window_days": defs.label.window_days,
        "actions": actions,
        "disqualify": disqualify,
        "more_actions": more,
        "event_id": "page-" + uuid.uuid4().hex,
        "can_rescore": bool(record["known"]),
        "points_rules": [r["text"] for r in describe_rules(team_points(defs), defs)] if _by_rules(result) else [],
        "score_text": shown_score(result["score"], result["mql"]["threshold"]) if result else "",
        "score_percent": shown_percent(result["score"], result["mql"]["threshold"]) if result else "",
        "grade": _grade(defs, result),
        "trend": _trend(result),
        "next_step": next_step,
        "verdict": _verdict(result, next_step),
    }


def _grade(defs: Definitions, result: dict[str, Any] | None) -> dict[str, str] | None:
    """The score's grade and what the definitions say it means (a score kept before grades has none)."""
    letter = (result or {}).get("grade")
    bands = {g.grade: g for g in defs.grade_bands}
    if letter not in bands:
        return None
    band = bands[letter]
    top = " to 100%" if band.max >= 1.0 else f" to {band.max:.0%}"
    return {"letter": str(letter), "description": band.description, "band": f"{band.min:.0%}{top}"}


def _trend(result: dict[str, Any] | None) -> dict[str, str] | None:
    """An arrow and the previous score: "▲ +12 points since 31% on 02 Dec 2026, 09:12 UTC"."""
    trend = (result or {}).get("trend")
    if not trend:
        return None
    delta = float(trend["delta"])
    points = delta * 100
    arrow, kind = ("▲", "up") if points >= 0.5 else ("▼", "down") if points <= -0.5 else ("▶", "flat")
    change = "no change" if kind == "flat" else f"{points:+.0f} points"
    since = f"since {float(trend['previous_score']):.0%} on {_when(pd.Timestamp(trend['previous_at']))}"
    return {"arrow": arrow, "kind": kind, "text": f"{change} {since}"}


def _next_step(defs: Definitions, result: dict[str, Any] | None) -> dict[str, Any] | None:
    """What would make it an MQL (`mql.to_pass`), in words, and the sentence `mql.summary` ends with for it
    (`note`); None for an MQL or a score kept before to_pass."""
    mql = (result or {}).get("mql") or {}
    changes = mql.get("to_pass")
    if mql.get("passed") or changes is None:
        return None
    if changes:
        score_if = mql.get("score_if")
        return {
            "headline": f"Would be an MQL after {after_words(defs, changes)}",
            "changes": [f"{c['label']}: {format_value(c['from'])} → {format_value(c['to'])}" for c in changes],
            "score_if": score_if,
            "note": step_note(defs, changes, float(score_if)) if score_if is not None else "",
        }
    fields = {c.key: c.field for c in defs.mql.criteria}
    actionable = {f.key for f in defs.actionable_features}
    stuck = [c["description"] for c in mql.get("criteria", []) if not c["met"] and fields.get(c["key"]) not in actionable]
    headline = stuck_note(stuck) if stuck else nothing_note(defs)
    return {"headline": headline, "changes": [], "score_if": None, "note": headline}


def _verdict(result: dict[str, Any] | None, next_step: dict[str, Any] | None) -> str:
    """The verdict line: `mql.summary` without the next-step sentence the box below it already shows
    (a summary the definitions word differently now keeps it: said twice beats said never)."""
    summary = str(((result or {}).get("mql") or {}).get("summary", ""))
    if next_step and next_step["note"]:
        return summary.removesuffix(" " + next_step["note"])
    return summary


def _by_rules(result: dict[str, Any] | None) -> bool:
    return result is not None and result["model"].get("kind") == "rules"


def _path(defs: Definitions, stages: list[str]) -> list[dict[str, str]]:
    """The funnel from the lead stage on, as a CRM's stage path: done, current or still ahead.

    A lead counts as past every stage before the furthest one it reached (as the report counts it);
    when it ended off the funnel (disqualified, recycled, lost) no funnel stage is current.
    """
    keys = [s.key for s in defs.funnel]
    start = defs.label.as_of_stage
    keys = keys[keys.index(start) :] if start in keys else keys
    ranks = [keys.index(s) for s in stages if s in keys]
    furthest = max(ranks, default=0)
    ended_off = bool(stages) and stages[-1] not in keys
    out = []
    for i, key in enumerate(keys):
        if i == furthest:
            state = "done" if ended_off else "current"
        else:
            state = "done" if i < furthest else "todo"
        out.append({"key": key, "name": defs.stage(key).name, "state": state})
    return out


def _reached_target(defs: Definitions, stages: list[dict[str, Any]]) -> str | None:
    """"Already a Sales Qualified Lead since ...": the score predicts what already happened."""
    later = set(defs.stages_at_or_after(defs.label.target_stage))
    first = next((s for s in stages if s["stage"] in later), None)
    if first is None:
        return None
    target = defs.stage(defs.label.target_stage).name
    when = _when(pd.Timestamp(first["occurred_at"]))
    return f"Already reached {target} or beyond on {when} ({first['name']}): the score matters less now."


def _is_attribute(defs: Definitions, key: str) -> bool:
    try:
        return defs.feature(key).kind == "attribute"
    except KeyError:
        return False


def _stage_view(defs: Definitions, s: dict[str, Any]) -> dict[str, Any]:
    try:
        stage = defs.stage(s["stage"])
        labels = {r.key: r.label for r in stage.reasons}
        off = stage.off_funnel
    except KeyError:
        labels, off = {}, False
    return {
        "name": s["name"],
        "reason": s["reason"],
        "reason_label": labels.get(s["reason"] or "", s["reason"]),
        "when": _when(pd.Timestamp(s["occurred_at"])),
        "source": s["source"],
        "off_funnel": off,
    }


def _when(ts: pd.Timestamp) -> str:
    return utc_timestamp(ts).strftime("%d %b %Y, %H:%M UTC")


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and value != value) and value != ""


def _headline(attrs: dict[str, Any], lead_id: str) -> str:
    if _present(attrs.get("job_title")):
        return str(attrs["job_title"])
    parts = [str(attrs[k]) for k in ("seniority", "department") if _present(attrs.get(k))]
    return " ".join(parts) if parts else f"Lead {lead_id}"


def _subtitle(attrs: dict[str, Any]) -> list[str]:
    out = [str(attrs[k]) for k in ("industry",) if _present(attrs.get(k))]
    if _present(attrs.get("employees")):
        out.append(f"{format_value(attrs['employees'])} employees")
    out += [str(attrs[k]) for k in ("country",) if _present(attrs.get(k))]
    if _present(attrs.get("source")):
        out.append(f"via {attrs['source']}")
    return out


def _sections(defs: Definitions, attrs: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Person, company, how the lead came in, then any other attribute, labelled as the definitions word them."""
    def row(key: str) -> tuple[str, str]:
        value = attrs[key]
        if key == "created_at" and _present(value):
            return "Created", _when(pd.Timestamp(value))
        return defs.attribute_label(key), format_value(value if _present(value) else None)

    groups = [("Person", PERSON), ("Company", COMPANY), ("How it came in", ("source", "created_at"))]
    used: set[str] = set()
    out = []
    for title, keys in groups:
        rows = [row(k) for k in keys if k in attrs]
        used.update(keys)
        if rows:
            out.append((title, rows))
    rest = [row(k) for k in sorted(attrs) if k not in used]
    if rest:
        out.append(("Other attributes", rest))
    return out


def _period_query(start: date | None, end: date | None) -> str:
    """`start=...&end=...` for a preset; an open end is left out."""
    return urlencode({k: d.isoformat() for k, d in (("start", start), ("end", end)) if d})


def report_context(defs: Definitions, report: FunnelReport) -> dict[str, Any]:
    """Everything report.html shows: the report itself, chart shapes, period presets, stage names."""
    rows, legend = charts.disqualification_rows(report.disqualifications)
    bands, top = charts.calibration_bars(report.calibration)
    today = report.generated_at.date()
    presets = [
        ("Last 30 days", (pd.Timestamp(today) - pd.Timedelta(days=29)).date(), today),
        ("Last 90 days", (pd.Timestamp(today) - pd.Timedelta(days=89)).date(), today),
        ("Last 12 months", (pd.Timestamp(today) - pd.DateOffset(years=1) + pd.Timedelta(days=1)).date(), today),
        ("All time", None, None),
    ]
    names = {s.key: s.name for s in defs.stages}
    return {
        "report": report,
        "start": report.period.start.isoformat(),
        "end": report.period.end.isoformat(),
        "presets": [(label, _period_query(a, b)) for label, a, b in presets],
        "funnel": charts.funnel_bars(report.funnel),
        "sla_segments": charts.sla_segments(report.sla),
        "dq_rows": rows,
        "dq_legend": legend,
        "cal_bars": bands,
        "cal_top": top,
        "threshold": defs.mql.threshold,
        "stage_names": names,
        "target_name": names.get(report.calibration.target_stage, report.calibration.target_stage),
    }
