"""Pages for people: the lead record for sales (`/leads/{id}`) and the funnel report (`/report`).

Server-rendered Jinja2 with autoescaping on, charts as inline SVG, no front-end build. The pages
reuse the API's own functions: the lead record is `lead_record_dict` (the dict `GET /v1/leads`
returns), a fresh score comes from the same `Scorer.score`, and the stage form goes through the
`POST /v1/feedback` route function, so the page and the API cannot disagree.
Access: open when the service is bound to loopback, else a login that takes an API key and sets
an HttpOnly, SameSite=Strict cookie holding an HMAC of the key (never the key itself).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import uuid
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pandas as pd
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from samepage.definitions import Definitions
from samepage.points import describe_rules, team_points
from samepage.settings import Settings
from serving import charts
from serving.auth import key_matches
from serving.errors import ApiError, describe_validation
from serving.explain import format_value
from serving.report import FunnelReport, PeriodError, load_report
from serving.routes.feedback import feedback as record_feedback
from serving.routes.leads import lead_record_dict
from serving.schemas import FeedbackIn

router = APIRouter(include_in_schema=False)

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
COOKIE = "samepage_session"
COOKIE_MAX_AGE = 12 * 3600
MAX_FORM_BYTES = 16 * 1024
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
# The verbs sales clicks on; any other stage of the definitions is under "Other stages".
VERBS = {"sal": "Accept (SAL)", "sql": "Qualify (SQL)", "recycled": "Recycle"}
DISQUALIFIED = "disqualified"
PERSON = ("job_title", "seniority", "department")
COMPANY = ("industry", "employees", "annual_revenue", "country")


@lru_cache(maxsize=1)
def templates() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "xml"], default=True))
    env.globals["fmt"] = format_value
    env.globals["pct"] = charts.percent
    env.globals["duration"] = charts.duration
    return env


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    defs: Definitions = request.app.state.defs
    signed_in = not is_loopback(request.app.state.settings.host) and has_access(request)
    html = templates().get_template(name).render(
        defs_name=defs.name, definitions_version=defs.version_string, signed_in=signed_in, **context
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


# -- access ------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def session_token(key: bytes) -> str:
    """What the cookie holds: an HMAC of the key, so the cookie never reveals the key itself."""
    return hmac.new(key, b"samepage pages session v1", hashlib.sha256).hexdigest()


def has_access(request: Request) -> bool:
    settings: Settings = request.app.state.settings
    if is_loopback(settings.host):
        return True
    cookie = request.cookies.get(COOKIE)
    keys: list[bytes] = request.app.state.api_keys
    if not cookie or not keys:
        return False
    return key_matches(cookie, [session_token(k).encode() for k in keys])


def login_redirect(request: Request) -> RedirectResponse | None:
    if has_access(request):
        return None
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)


def safe_next(target: str | None) -> str:
    """Only a path on this site (no `//host`, no scheme): an open redirect would phish with our name."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/report"
    return target


def same_origin(request: Request) -> bool:
    """A form POST must come from our own pages (browsers send Sec-Fetch-Site / Origin)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin and origin != "null":
        # Host only: behind a TLS-terminating proxy the browser's scheme is not the one we see.
        return urlsplit(origin).netloc == request.url.netloc
    return origin != "null"


async def read_form(request: Request) -> dict[str, str]:
    """A urlencoded form body (the pages post nothing else); first value of each field."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ApiError(413, f"The form is larger than {MAX_FORM_BYTES:,} bytes")
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


@router.get("/login")
def login_page(request: Request, target: Annotated[str | None, Query(alias="next")] = None) -> Response:
    if has_access(request):
        return RedirectResponse(safe_next(target), status_code=303)
    return render(request, "login.html", next=safe_next(target), error=None, active="")


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    target = safe_next(form.get("next"))
    keys: list[bytes] = request.app.state.api_keys
    given = form.get("api_key", "").strip()
    if not same_origin(request) or not keys or not given or not key_matches(given, keys):
        error = "That API key is not valid for this service." if keys else "No API keys are configured on this service."
        return render(request, "login.html", status=401, next=target, error=error, active="")
    token = next(session_token(k) for k in keys if hmac.compare_digest(given.encode("utf-8", "surrogatepass"), k))
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE, token, max_age=COOKIE_MAX_AGE, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/"
    )
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


# -- the lead record ---------------------------------------------------------------------------


@router.get("/leads")
def open_lead(request: Request, lead_id: str = "") -> Response:
    """The header's "open a lead" box."""
    if not lead_id.strip():
        return RedirectResponse("/report", status_code=303)
    return RedirectResponse(f"/leads/{quote(lead_id.strip(), safe='')}", status_code=303)


@router.get("/leads/{lead_id:path}")
async def lead_page(
    request: Request,
    lead_id: str,
    recorded: str | None = None,
    reason: str | None = None,
    again: str | None = None,
    rescored: str | None = None,
) -> Response:
    if (redirect := login_redirect(request)) is not None:
        return redirect
    defs: Definitions = request.app.state.defs
    flash = _flash(defs, recorded, reason, again, rescored)
    return await run_in_threadpool(_lead_response, request, lead_id, flash, None, 200)


@router.post("/leads/{lead_id:path}")
async def lead_feedback(request: Request, lead_id: str) -> Response:
    """The stage form: validated and stored by the `POST /v1/feedback` route function itself."""
    if (redirect := login_redirect(request)) is not None:
        return redirect
    if not same_origin(request):
        return HTMLResponse("This form only accepts posts from samepage's own pages.", status_code=403)
    form = await read_form(request)
    state = request.app.state
    if form.get("action") == "rescore":
        return await run_in_threadpool(_rescore, request, lead_id)
    try:
        body = FeedbackIn(
            lead_id=lead_id,
            stage=form.get("stage", ""),
            reason=form.get("reason") or None,
            occurred_at=datetime.now(UTC),
            event_id=form.get("event_id") or None,
            actor="lead page",
        )
        out = await run_in_threadpool(record_feedback, body, state.defs, state.records, state.metrics, Response())
    except ValidationError as exc:
        _, message = describe_validation([{**e, "loc": ("form", *e["loc"])} for e in exc.errors()])
        return await run_in_threadpool(_lead_response, request, lead_id, None, message, 422)
    except ApiError as exc:
        return await run_in_threadpool(_lead_response, request, lead_id, None, exc.message.replace("body.", "form."), exc.status)
    query = {"recorded": out["stage"], **({"reason": out["reason"]} if out["reason"] else {}), **({} if out["created"] else {"again": "1"})}
    return RedirectResponse(f"/leads/{quote(lead_id, safe='')}?{urlencode(query)}", status_code=303)


def _rescore(request: Request, lead_id: str) -> Response:
    """"Score again": the API's scorer on the feature store's current values, saved to the record."""
    state = request.app.state
    try:
        result = state.scorer.score([(lead_id, {})])[0]
    except ApiError as exc:
        return _lead_response(request, lead_id, None, f"Could not score this lead again: {exc.message}", exc.status)
    state.writer.submit([result])
    return RedirectResponse(f"/leads/{quote(lead_id, safe='')}?{urlencode({'rescored': '1'})}", status_code=303)


def _flash(defs: Definitions, recorded: str | None, reason: str | None, again: str | None, rescored: str | None = None) -> str | None:
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


def _lead_response(request: Request, lead_id: str, flash: str | None, error: str | None, status: int) -> HTMLResponse:
    state = request.app.state
    defs: Definitions = state.defs
    try:
        record = lead_record_dict(lead_id, state.settings, defs, state.scorer, state.records, state.writer)
    except ApiError as exc:
        if exc.status != 404:
            raise
        return render(request, "missing.html", status=404, lead_id=lead_id, message=exc.message, active="")
    result, no_score = _result(state, record, lead_id)
    return render(request, "lead.html", status=status, active="lead", **lead_context(defs, record, result, no_score), flash=flash, error=error)


def _result(state: Any, record: dict[str, Any], lead_id: str) -> tuple[dict[str, Any] | None, str]:
    """The latest score as the API returns it; a lead the store knows but nobody scored yet is scored now."""
    latest = record["latest_score"]
    if latest is not None:
        return latest["result"], ""
    if not record["known"]:
        return None, "Not scored yet: the feature store does not know this lead, and no score was sent for it."
    try:
        result = state.scorer.score([(lead_id, {})])[0]
    except ApiError as exc:
        return None, f"Not scored yet. {exc.message}"
    state.writer.submit([result])
    return result, ""


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
    actions = [{"key": k, "verb": v, "entry": defs.stage(k).entry} for k, v in VERBS.items() if any(s.key == k for s in defs.stages)]
    skip = {*VERBS, DISQUALIFIED, defs.label.as_of_stage}
    more = [s for s in defs.stages if s.key not in skip and (defs.funnel_rank(s.key) or 0) >= (defs.funnel_rank(defs.label.as_of_stage or "") or 0)]
    scored_at = pd.Timestamp(result["scored_at"]) if result else None
    return {
        "path": _path(defs, [s["stage"] for s in record["stages"]]),
        "reached": _reached_target(defs, record["stages"]),
        "lead_id": record["lead_id"],
        "headline": _headline(attrs, record["lead_id"]),
        "subtitle": " · ".join(_subtitle(attrs)),
        "sections": _sections(defs, attrs),
        "stages": stages,
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
    }


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
        state = "done" if i < furthest else ("current" if i == furthest and not ended_off else ("done" if i == furthest else "todo"))
        out.append({"key": key, "name": defs.stage(key).name, "state": state})
    return out


def _reached_target(defs: Definitions, stages: list[dict[str, Any]]) -> str | None:
    """"Already a Sales Qualified Lead since ...": the score predicts what already happened."""
    later = set(defs.stages_at_or_after(defs.label.target_stage))
    first = next((s for s in stages if s["stage"] in later), None)
    if first is None:
        return None
    target = defs.stage(defs.label.target_stage).name
    return f"Already reached {target} or beyond on {_when(pd.Timestamp(first['occurred_at']))} ({first['name']}): the score matters less now."


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
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.strftime("%d %b %Y, %H:%M UTC")


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
    labels = {f.column: f.label for f in defs.features if f.kind == "attribute"}

    def row(key: str) -> tuple[str, str]:
        value = attrs[key]
        if key == "created_at" and _present(value):
            return "Created", _when(pd.Timestamp(value))
        return labels.get(key, key.replace("_", " ").capitalize()), format_value(value if _present(value) else None)

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


# -- the report --------------------------------------------------------------------------------


def parse_day(value: str | None, name: str) -> date | None:
    if value is None or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise PeriodError(f"{name}: {value!r} is not a date (YYYY-MM-DD)") from None


@router.get("/report")
async def report_page(request: Request, start: str | None = None, end: str | None = None) -> Response:
    if (redirect := login_redirect(request)) is not None:
        return redirect
    state = request.app.state
    try:
        report = await run_in_threadpool(
            load_report, state.settings, state.defs, state.records, parse_day(start, "start"), parse_day(end, "end")
        )
    except PeriodError as exc:
        return render(request, "report.html", status=422, active="report", report=None, error=str(exc), start=start, end=end)
    except FileNotFoundError as exc:
        return render(request, "report.html", status=404, active="report", report=None, error=str(exc), start=start, end=end)
    return render(request, "report.html", active="report", error=None, **report_context(state.defs, report))


def report_context(defs: Definitions, report: FunnelReport) -> dict[str, Any]:
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
        "presets": [(label, urlencode({k: v.isoformat() for k, v in (("start", a), ("end", b)) if v})) for label, a, b in presets],
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
