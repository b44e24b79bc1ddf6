"""The closed-loop funnel report: what happened to the leads marketing sent, in the definitions' words.

The cohort is every lead whose as-of time (first entry into `label.as_of_stage`, else creation)
falls in the period. For that cohort the report counts how far each lead got *so far* (a lead
counts at a stage when it reached that stage or any later funnel stage, so the funnel never
widens), the median time between consecutive stages, MQLs that sales did not follow up within
the SLA, disqualification reasons by lead source, and how well the latest score separated the
leads that reached the label stage within the window after it was made from the rest (calibration
by score band, ROC AUC, Brier).
Until a scored lead of the period has an outcome, the calibration shows the champion's out-of-time
predictions from training instead (`samepage.holdout`), and says so (`Calibration.source`).
One computation, `build_report`, feeds both `GET /v1/report` (JSON) and the `/report` page;
the shapes it fills are in `serving.report_schemas`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score

from samepage import outcomes
from samepage.data.live import workspace_tables
from samepage.definitions import Definitions
from samepage.holdout import Holdout, load_holdout
from samepage.inbox import Inbox
from samepage.records import RecordStore, stage_history
from samepage.settings import Settings
from samepage.tables import CanonicalTables
from samepage.values import utc_timestamp
from serving.report_schemas import (
    Band,
    Calibration,
    Disqualifications,
    FunnelReport,
    FunnelStep,
    Period,
    ReasonRef,
    SlaOut,
    SourceDisqualifications,
    StageTime,
)

if TYPE_CHECKING:
    from serving.scorer import Champion

DISQUALIFIED = "disqualified"  # the contract's off-funnel stage that carries a reason
UNKNOWN_SOURCE = "(no source)"
N_BANDS = 10
# What pandas timestamps (nanoseconds since 1970) can hold, in whole days.
EARLIEST = date(1678, 1, 1)
LATEST = date(2261, 12, 31)


class PeriodError(ValueError):
    """A period that cannot be reported on; the message names the parameter."""


def resolve_period(start: date | None, end: date | None, as_of: pd.Series, today: date) -> Period:
    """A missing start is the first as-of day in the data, a missing end today (never crossing the other end)."""
    first = as_of.min().date() if len(as_of) else today
    start = start or (min(first, end) if end else first)
    end = end or max(today, start)
    for name, day in (("start", start), ("end", end)):
        if not EARLIEST <= day <= LATEST:
            raise PeriodError(f"{name}: {day} is outside the dates a report covers ({EARLIEST} to {LATEST})")
    if start > end:
        raise PeriodError(f"start ({start}) is after end ({end})")
    return Period(start=start, end=end)


def build_report(
    defs: Definitions,
    tables: CanonicalTables,
    history: pd.DataFrame,
    scores: pd.DataFrame,
    start: date | None = None,
    end: date | None = None,
    now: datetime | None = None,
    drift: dict[str, Any] | None = None,
    out_of_time: Callable[[], Holdout | None] | None = None,
) -> FunnelReport:
    """The report for leads whose as-of time is in [start, end] (whole UTC days).

    `history` is the merged stage history (imported + feedback, STAGE_COLUMNS); `scores` the
    record store's latest scores (lead_id, score, ...). `now` decides open SLAs and label windows.
    `out_of_time` gives the champion's out-of-time predictions, asked for only when no scored lead
    of the period has an outcome.
    """
    now_ts = utc_timestamp(now or datetime.now(UTC))
    # Lead ids become positions in the leads table: every join and group below is on integers.
    ids = pd.Index(tables.leads["lead_id"].astype(str))
    created = pd.Series(pd.to_datetime(tables.leads["created_at"], utc=True).array)
    history = _normalise_history(history, ids)
    as_of = outcomes.as_of_times(defs, created, history)
    period = resolve_period(start, end, as_of, now_ts.date())
    lo = pd.Timestamp(period.start, tz="UTC")
    hi = pd.Timestamp(period.end + timedelta(days=1), tz="UTC")
    cohort = as_of[(as_of >= lo) & (as_of < hi)]
    hist = history.loc[history["lead_id"].isin(cohort.index)]
    steps = _funnel_steps(defs)
    first_at = _first_times(hist, cohort, steps[0])
    return FunnelReport(
        period=period,
        generated_at=now_ts.to_pydatetime(),
        definitions_version=defs.version_string,
        leads=len(cohort),
        funnel=_funnel(defs, steps, hist, cohort),
        stage_times=_stage_times(steps, first_at),
        sla=_sla(defs, hist, now_ts),
        disqualifications=_disqualifications(defs, tables.leads, hist, cohort),
        calibration=_calibration_or_training(defs, hist, cohort, _positions(scores, ids), now_ts, out_of_time),
        drift=drift,
    )


def load_report(
    settings: Settings,
    defs: Definitions,
    store: RecordStore,
    start: date | None = None,
    end: date | None = None,
    now: datetime | None = None,
    drift: dict[str, Any] | None = None,
    out_of_time: Callable[[], Holdout | None] | None = None,
) -> FunnelReport:
    """`build_report` over the workspace: canonical tables, feedback and latest scores; `drift` is
    the scoring model's own drift check (from its bundle), shown beside the funnel; `out_of_time`
    (see `champion_out_of_time`) fills the calibration until live scores have outcomes."""
    tables = workspace_tables(settings.data_dir, Inbox.of(store))  # leads from the API count like imported ones
    history = stage_history(settings, tables.stages, store)
    return build_report(defs, tables, history, store.latest_scores(), start, end, now, drift, out_of_time)


def champion_out_of_time(settings: Settings, champion: Champion | None) -> Callable[[], Holdout | None] | None:
    """A loader of the scoring champion's out-of-time predictions, read through MLflow when first asked
    (None when the points rules score: they have no training run)."""
    if champion is None or not champion.registered or not champion.run_id:
        return None
    run_id, version = champion.run_id, champion.version

    def load() -> Holdout | None:
        found = load_holdout(settings.tracking_uri, run_id)
        return replace(found, model_version=version) if found is not None else None

    return load


# -- the parts --------------------------------------------------------------------------------


def _normalise_history(history: pd.DataFrame, ids: pd.Index) -> pd.DataFrame:
    """lead_id as the lead's position in `ids`; rows of leads not in the table (feedback only) are dropped."""
    position = ids.get_indexer(history["lead_id"].astype(str))
    frame = pd.DataFrame(
        {
            "lead_id": position,
            "stage": history["stage"].astype(str).to_numpy(),
            "occurred_at": pd.to_datetime(history["occurred_at"], utc=True).array,
            "reason": history["reason"].astype("string").to_numpy(),
        }
    )
    return frame.loc[position >= 0]


def _positions(scores: pd.DataFrame, ids: pd.Index) -> pd.DataFrame:
    position = ids.get_indexer(scores["lead_id"].astype(str))
    frame = pd.DataFrame({"lead_id": position, "score": scores["score"].astype(float).to_numpy()})
    if "scored_at" in scores.columns:
        frame["scored_at"] = pd.to_datetime(scores["scored_at"], utc=True).array
    return frame.loc[position >= 0]


def _funnel_steps(defs: Definitions) -> list[str]:
    """The ordered funnel from the stage a lead enters the loop (label.as_of_stage) onwards."""
    keys = [s.key for s in defs.funnel]
    first = defs.label.as_of_stage
    return keys[keys.index(first) :] if first in keys else keys


def _first_times(hist: pd.DataFrame, cohort: pd.Series, first_step: str) -> pd.DataFrame:
    """lead x stage -> first time recorded; the first step is the lead's as-of time."""
    if len(hist):
        firsts = hist.groupby(["lead_id", "stage"])["occurred_at"].min().unstack("stage").reindex(cohort.index)
    else:  # pandas cannot unstack an empty tz-aware series
        firsts = pd.DataFrame(index=cohort.index)
    firsts[first_step] = cohort
    return firsts


def _funnel(defs: Definitions, steps: list[str], hist: pd.DataFrame, cohort: pd.Series) -> list[FunnelStep]:
    rank = {k: i for i, k in enumerate(steps)}
    ranked = hist.assign(rank=hist["stage"].map(rank)).dropna(subset=["rank"])
    furthest = ranked.groupby("lead_id")["rank"].max().reindex(cohort.index).fillna(0).to_numpy()
    out: list[FunnelStep] = []
    counts = [int((furthest >= i).sum()) for i in range(len(steps))]
    for i, key in enumerate(steps):
        stage = defs.stage(key)
        out.append(
            FunnelStep(
                key=key,
                name=stage.name,
                owner=stage.owner,
                leads=counts[i],
                rate_from_previous=_ratio(counts[i], counts[i - 1]) if i else None,
                rate_from_first=_ratio(counts[i], counts[0]),
            )
        )
    return out


def _stage_times(steps: list[str], first_at: pd.DataFrame) -> list[StageTime]:
    out = []
    for a, b in zip(steps, steps[1:], strict=False):
        if a not in first_at or b not in first_at:
            out.append(StageTime(from_stage=a, to_stage=b, leads=0, median_hours=None))
            continue
        delta = (first_at[b] - first_at[a]).dropna()
        delta = delta[delta >= pd.Timedelta(0)]
        hours = delta.dt.total_seconds() / 3600.0
        median = float(hours.median()) if len(hours) else None
        out.append(StageTime(from_stage=a, to_stage=b, leads=len(hours), median_hours=median))
    return out


def _sla(defs: Definitions, hist: pd.DataFrame, now: pd.Timestamp) -> SlaOut:
    """Follow-up is any stage change recorded after the lead first became an MQL."""
    hours = defs.sla.mql_follow_up_hours
    mql_at = hist.loc[hist["stage"] == "mql"].groupby("lead_id")["occurred_at"].min()
    later = hist.loc[hist["stage"] != "mql"]
    later = later.assign(mql_at=later["lead_id"].map(mql_at)).dropna(subset=["mql_at"])
    later = later.loc[later["occurred_at"] >= later["mql_at"]]
    follow = later.groupby("lead_id")["occurred_at"].min().reindex(mql_at.index)
    waited = (follow - mql_at).dt.total_seconds() / 3600.0
    open_for = (now - mql_at).dt.total_seconds() / 3600.0
    followed = follow.notna()
    within = int((followed & (waited <= hours)).sum())
    late = int((followed & (waited > hours)).sum())
    pending = int((~followed & (open_for <= hours)).sum())
    none = int((~followed & (open_for > hours)).sum())
    decided = len(mql_at) - pending
    return SlaOut(
        follow_up_hours=hours,
        mqls=len(mql_at),
        within_sla=within,
        late=late,
        not_followed_up=none,
        pending=pending,
        missed=late + none,
        missed_rate=_ratio(late + none, decided),
        median_follow_up_hours=float(waited.median()) if followed.any() else None,
    )


def _disqualifications(defs: Definitions, leads: pd.DataFrame, hist: pd.DataFrame, cohort: pd.Series) -> Disqualifications:
    reasons_known = defs.stage(DISQUALIFIED).reasons if _has_stage(defs, DISQUALIFIED) else []
    known = [ReasonRef(key=r.key, label=r.label) for r in reasons_known]
    if "source" in leads.columns:
        source = pd.Series(leads["source"].astype("string").to_numpy(), dtype="string")
    else:
        source = pd.Series(pd.NA, index=pd.RangeIndex(len(leads)), dtype="string")
    source = source.reindex(cohort.index).fillna(UNKNOWN_SOURCE)
    dq = hist.loc[hist["stage"] == DISQUALIFIED].sort_values("occurred_at", kind="stable").drop_duplicates("lead_id", keep="last")
    reason = dq.set_index("lead_id")["reason"].astype("string").fillna("(no reason)")
    seen = set(reason.unique())
    reasons = known + [ReasonRef(key=k, label=k) for k in sorted(seen - {r.key for r in known})]
    table = pd.crosstab(source.reindex(reason.index), reason) if len(reason) else pd.DataFrame()
    sizes = source.value_counts()
    rows = []
    for src, n in sizes.items():
        counts = {r.key: int(table.at[src, r.key]) if src in table.index and r.key in table.columns else 0 for r in reasons}
        rows.append(SourceDisqualifications(source=str(src), leads=int(n), disqualified=sum(counts.values()), by_reason=counts))
    rows.sort(key=lambda r: (-r.disqualified, -r.leads, r.source))
    return Disqualifications(reasons=reasons, by_source=rows, total=len(reason))


def _calibration_or_training(
    defs: Definitions,
    hist: pd.DataFrame,
    cohort: pd.Series,
    scores: pd.DataFrame,
    now: pd.Timestamp,
    out_of_time: Callable[[], Holdout | None] | None,
) -> Calibration:
    """Live scores against outcomes; without one such lead, the champion's out-of-time predictions."""
    live = _calibration(defs, hist, cohort, scores, now)
    if live.with_outcome:
        return live.model_copy(
            update={
                "source_note": f"Live scores: the latest score of each of the period's {live.with_outcome:,} scored leads "
                f"whose {defs.label.window_days}-day window after scoring has closed, against what happened in it."
            }
        )
    holdout = out_of_time() if out_of_time is not None else None
    if holdout is None or holdout.n == 0:
        return live
    p = holdout.frame["score"].to_numpy(dtype=float)
    y = holdout.frame["label"].to_numpy(dtype=int)
    shown = _bands(defs, p, y, scored=len(p), open_window=0, already=0)
    why = (
        f"No live score of this period has an outcome yet (its {defs.label.window_days}-day window after scoring is still open)"
        if live.scored
        else "No lead of this period has been scored yet"
    )
    note = f"{why}: showing {holdout.describe()}. Not limited to this period; live scores replace them once they have outcomes."
    return shown.model_copy(update={"source": "out_of_time", "source_note": note})


def _calibration(
    defs: Definitions, hist: pd.DataFrame, cohort: pd.Series, scores: pd.DataFrame, now: pd.Timestamp
) -> Calibration:
    latest = scores.drop_duplicates("lead_id", keep="last").set_index("lead_id")
    score = latest["score"].reindex(cohort.index).dropna()
    # A score predicts the label window that starts when it was made (as a training snapshot does
    # from its as-of time), not the one from the lead's entry: a lead scored today, long after its
    # outcome, predicted nothing. Without score times (hand-built scores) the as-of time stands in.
    judged = cohort.reindex(score.index)
    if "scored_at" in latest.columns:
        judged = latest["scored_at"].reindex(score.index).fillna(judged).rename("as_of")
    rule = outcomes.outcomes(defs, judged, hist, now)
    positive = rule["reached"]
    # As in training: an open window is left out whatever it reached, or recent leads would
    # look better (only their early converters counted) or worse (counted as "no") than they are;
    # and a lead already at the target before it was scored has no outcome left to predict.
    already = rule["closed"] & rule["reached_before"] & ~rule["reached"]
    known = rule["closed"] & ~already
    p, y = score[known].to_numpy(), positive[known].to_numpy().astype(int)
    return _bands(defs, p, y, len(score), int((~rule["closed"]).sum()), int(already.sum()))


def _bands(defs: Definitions, p: np.ndarray, y: np.ndarray, scored: int, open_window: int, already: int) -> Calibration:
    """Calibration by score band of scores `p` against outcomes `y` (0/1)."""
    label = defs.label
    both = len(set(y.tolist())) == 2
    edges = np.round(np.linspace(0.0, 1.0, N_BANDS + 1), 6)
    band = np.clip(np.digitize(p, edges[1:-1], right=False), 0, N_BANDS - 1)
    bands = []
    for i in range(N_BANDS):
        sel = band == i
        n = int(sel.sum())
        bands.append(
            Band(
                low=float(edges[i]),
                high=float(edges[i + 1]),
                leads=n,
                predicted=float(p[sel].mean()) if n else None,
                actual=float(y[sel].mean()) if n else None,
            )
        )
    return Calibration(
        target_stage=label.target_stage,
        window_days=label.window_days,
        scored=scored,
        with_outcome=len(p),
        open_window=open_window,
        already_at_target=already,
        positives=int(y.sum()),
        roc_auc=float(roc_auc_score(y, p)) if both else None,
        brier=float(brier_score_loss(y, p)) if len(p) else None,
        mean_predicted=float(p.mean()) if len(p) else None,
        actual_rate=float(y.mean()) if len(p) else None,
        bands=bands,
    )


def _has_stage(defs: Definitions, key: str) -> bool:
    return any(s.key == key for s in defs.stages)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None
