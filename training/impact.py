"""The effect of a proposed definitions file before both teams sign it (`samepage definitions preview`).

The words and the retrain verdict come from `samepage.changes`; the figures from the champion's
out-of-time predictions (`samepage.holdout`, stored with its training run) through
`training.threshold.threshold_point`, the function `train --json` reports its threshold with, on the
same leads, weekly volume and criteria rule. So a file whose threshold is moved to the one `train
--json` printed previews exactly the expected MQLs a week `train --json` printed.
"""

from __future__ import annotations

from samepage.changes import Outlook, Preview, describe_changes, retrain_reasons
from samepage.criteria import criteria_met
from samepage.definitions import Definitions
from samepage.holdout import Holdout, champion_holdout
from samepage.settings import Settings
from training.threshold import threshold_point

OTHER_DEFINITIONS = (
    "The champion was trained under other label/feature definitions than the current file: the figures are indicative."
)
NO_PREDICTIONS = (
    "No expected MQLs: the champion has no out-of-time predictions stored (none yet, or it was trained before "
    "they were kept; run `samepage train`)."
)


def outlook(defs: Definitions, holdout: Holdout) -> Outlook:
    """The MQL rule of `defs` (threshold, criteria, capacity) on the stored predictions."""
    frame = holdout.frame
    point = threshold_point(
        defs.mql.threshold,
        frame["label"].to_numpy(dtype=float),
        frame["score"].to_numpy(dtype=float),
        holdout.weekly_leads,
        criteria_met(defs, frame),
    )
    capacity = defs.sla.capacity.mqls_per_week
    return Outlook(
        threshold=point.value,
        capacity_per_week=capacity,
        share_of_leads=point.share_of_leads,
        expected_mql_per_week=point.expected_mql_per_week,
        expected_sql_rate=point.expected_sql_rate,
        capacity_share=point.expected_mql_per_week / capacity,
    )


def preview_with(current: Definitions, proposed: Definitions, source: str, holdout: Holdout | None) -> Preview:
    """The preview from predictions already loaded (None: words and verdict only)."""
    changes = describe_changes(current, proposed) or ["No change: the proposed file says what the current one says."]
    reasons = retrain_reasons(current, proposed)
    if holdout is None:
        return Preview(current.version_string, proposed.version_string, source, changes, reasons, notes=[NO_PREDICTIONS])
    notes = []
    unread = sorted({c.field for c in proposed.mql.criteria if c.field not in holdout.frame.columns})
    if unread:
        notes.append(
            f"The stored predictions do not hold {', '.join(unread)}: criteria on them count as their `if_missing` says."
        )
    if holdout.fingerprint and holdout.fingerprint != current.fingerprint:
        notes.append(OTHER_DEFINITIONS)
    if reasons:
        notes.append("A retrain changes the scores: the figures are the current champion's, before retraining.")
    basis = f"{holdout.describe()}; {holdout.weekly_leads:,.1f} new leads a week ({holdout.volume_basis})"
    return Preview(
        current.version_string, proposed.version_string, source, changes, reasons,
        outlook(current, holdout), outlook(proposed, holdout), basis, notes,
    )  # fmt: skip


def preview(settings: Settings, current: Definitions, proposed: Definitions, source: str) -> Preview:
    """`proposed` against `current`, with the current champion's out-of-time predictions when it has them."""
    return preview_with(current, proposed, source, champion_holdout(settings))
