"""What would make a lead an MQL: the fewest next steps marketing can take, checked with the model itself.

A step is one more event of a type whose counts the definitions mark `actionable` (a demo request
raises every actionable count of demo requests by one). Every combination of up to `BUDGET` steps
is rescored in batched model calls over the candidates of all leads (the model's logit on the
encoded rows, what scoring the lead with those counts as overrides gives; only the part of the
model those counts reach is run again, `Rescore`); the answer is
the passing combination with the fewest steps, then the highest score. Leads no candidate can
pass are settled by one bound row first (`_hopeful`), and a large search goes by number of steps,
each stage only for the leads the smaller ones left without an answer. A failed MQL criterion on a
field no step changes (a student, a competitor) cannot be fixed by marketing: then the answer is
`[]` and the note names the criterion. The API, batch scoring, the lead page and the notebook call `to_pass`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from samepage.bundle import Bundle
from samepage.definitions import Definitions
from samepage.values import sigmoid
from serving.explain import lightgbm_threads
from serving.mql import Verdict, check, shown_score

BUDGET = 3  # events at most: "a demo request and two pricing page views" is a next step, ten webinars are not
SMALL_SEARCH = 2_000  # candidate rows; below this one LightGBM thread beats waking a pool (a lead alone has 119)


@dataclass(frozen=True, slots=True)
class Step:
    """One more event of `event_type`: +1 on each actionable count of that type (feature positions)."""

    event_type: str
    label: str
    columns: tuple[int, ...]


@dataclass(slots=True)
class ToPass:
    """The contract's `mql.to_pass` and `mql.score_if`, and the sentence the summary gains."""

    changes: list[dict[str, Any]]
    score_if: float | None
    note: str


def steps(defs: Definitions, feature_keys: Sequence[str]) -> list[Step]:
    """The next steps the definitions allow, in their event-type order, over the model's features."""
    position = {k: j for j, k in enumerate(feature_keys)}
    labels = {e.key: e.label for e in defs.event_types}
    out: list[Step] = []
    for event_type in labels:
        columns = tuple(position[f.key] for f in defs.actionable_features if f.event_type == event_type and f.key in position)
        if columns:
            out.append(Step(event_type, labels[event_type], columns))
    return out


@functools.lru_cache(maxsize=32)
def _candidates(columns: tuple[tuple[int, ...], ...], n_features: int, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """`combinations` of the steps (feature positions per step) and what each adds per feature; made once
    per plan (read-only: shared between requests)."""
    counts = combinations(len(columns), budget)
    delta = np.zeros((len(counts), n_features))
    for s, cols in enumerate(columns):
        delta[:, list(cols)] += counts[:, [s]]
    counts.setflags(write=False)
    delta.setflags(write=False)
    return counts, delta


def combinations(n_steps: int, budget: int = BUDGET) -> np.ndarray:
    """Every multiset of 1..budget steps as counts per step (rows), fewest steps first."""
    rows = []
    for size in range(1, budget + 1):
        for combo in itertools.combinations_with_replacement(range(n_steps), size):
            counts = np.zeros(n_steps, dtype=np.int64)
            for s in combo:
                counts[s] += 1
            rows.append(counts)
    return np.array(rows, dtype=np.int64).reshape(-1, n_steps)


def to_pass(
    bundle: Bundle,
    defs: Definitions,
    X: np.ndarray,
    verdicts: Sequence[Verdict],
    values: Sequence[Mapping[str, Any]],
    budget: int = BUDGET,
    prune: bool = True,
    threads: int | None = None,
    logits: np.ndarray | None = None,
) -> list[ToPass | None]:
    """Per lead (rows of the encoded `X`, their verdicts and criterion/feature values): None for an MQL, else `ToPass`.

    `prune=False` rescores every candidate of every lead at once (the tests' oracle for `_hopeful` and
    the staged search); `threads`: LightGBM's for a large search (None: every core); `logits`: the
    rows' own (`bundle.logit(X)`, as their explanations sum), if known."""
    keys = bundle.feature_keys
    plan = steps(defs, keys)
    changeable = {keys[j] for s in plan for j in s.columns}
    out: list[ToPass | None] = [None] * len(verdicts)
    search: list[int] = []
    stuck_notes: dict[tuple[str, ...], str] = {}  # worded once per batch: most leads share a few
    for i, v in enumerate(verdicts):
        if v.passed:
            continue
        stuck = tuple(c.description for c in v.criteria if not c.met and c.field not in changeable)
        if stuck:
            note = stuck_notes.get(stuck)
            if note is None:
                note = stuck_notes[stuck] = stuck_note(stuck)
            out[i] = ToPass([], None, note)
        elif not plan:
            out[i] = ToPass([], None, "No feature is marked actionable in the definitions, so no next step is suggested.")
        else:
            search.append(i)
    if not search:
        return out
    counts, delta = _candidates(tuple(s.columns for s in plan), len(keys), budget)  # (m, steps), (m, features)
    # by parts for a large search only (a lead or a few: fewer model calls cost less), decided once so that
    # every stage, and the full search, score each candidate alike
    rescore = Rescore(bundle, X, logits, threads, by_parts=len(search) * len(counts) >= SMALL_SEARCH)
    stages = [np.arange(len(counts))]  # every candidate at once: the oracle
    if prune:
        search = _hopeful(bundle, defs, X, search, delta, out, budget, rescore)
        if len(search) * len(counts) >= SMALL_SEARCH:  # a few leads: one call costs less than three
            # Fewest steps first: a lead with a passing candidate of n steps needs none of the larger ones.
            sizes = counts.sum(axis=1)
            stages = [np.flatnonzero(sizes == size) for size in range(1, budget + 1)]
    for picked in stages:
        if not search:
            break
        best, best_scores = _search(bundle, defs, X, search, counts[picked], delta[picked], changeable, rescore)
        left: list[int] = []
        for row, i in enumerate(search):
            b = int(best[row])
            if b < 0:
                left.append(i)
            else:
                out[i] = _answer(defs, keys, plan, counts[picked[b]], values[i], float(best_scores[row]))
        search = left
    nothing = nothing_note(defs, budget)
    for i in search:
        out[i] = ToPass([], None, nothing)
    return out


@dataclass
class Rescore:
    """Logits of rows that differ from a lead's encoded row in a few columns (the steps' counts).

    When the model is a sum of parts (`Bundle.parts_reading`: LightGBM's trees), the candidates that
    change the same columns are scored by the parts that read those columns alone: a candidate's
    logit is its lead's, less those parts' shares of the lead's row, plus their value on the
    candidate. A demo request reaches a third of our champions' trees, the three steps of a large
    candidate together fewer than half. Any other model scores every candidate whole."""

    bundle: Bundle
    X: np.ndarray
    logits: np.ndarray | None  # X's own, if known (as the explanations add up)
    threads: int | None
    by_parts: bool = True
    _parts: dict[tuple[int, ...], tuple[int, ...] | None] = field(default_factory=dict)

    def whole(self, rows: np.ndarray) -> np.ndarray:
        """The model's logit of each row."""
        return self.bundle.logit(rows, **self._threads(len(rows)))

    def candidates(self, leads: list[int], delta: np.ndarray) -> np.ndarray:
        """(leads, candidates): the logit of each lead's row (rows of X) with each row of `delta` added."""
        rows = self.X[leads]
        m = len(delta)
        if not self.by_parts:
            return self.whole(candidate_rows(rows, delta)).reshape(len(leads), m)
        groups: dict[tuple[int, ...] | None, list[int]] = {}
        for c in range(m):
            groups.setdefault(self.parts(tuple(np.flatnonzero(delta[c] > 0).tolist())), []).append(c)
        if None in groups:
            return self.whole(candidate_rows(rows, delta)).reshape(len(leads), m)
        reached = sorted({p for parts in groups if parts is not None for p in parts})
        own = self.whole(rows) if self.logits is None else self.logits[leads]
        shares = self.bundle.part_shares(rows, reached, **self._threads(len(rows)))
        at = {p: k for k, p in enumerate(reached)}
        out = np.empty((len(leads), m))
        for parts, picked in groups.items():
            assert parts is not None
            rest = own - shares[:, [at[p] for p in parts]].sum(axis=1)
            changed = candidate_rows(rows, delta[picked])
            value = self.bundle.parts_logit(changed, parts, **self._threads(len(changed)))
            out[:, picked] = rest[:, None] + value.reshape(len(leads), len(picked))
        return out

    def parts(self, columns: tuple[int, ...]) -> tuple[int, ...] | None:
        if columns not in self._parts:
            self._parts[columns] = self.bundle.parts_reading(columns)
        return self._parts[columns]

    def _threads(self, rows: int) -> dict[str, int]:
        return lightgbm_threads(rows, SMALL_SEARCH, self.threads)


def _search(
    bundle: Bundle,
    defs: Definitions,
    X: np.ndarray,
    search: list[int],
    counts: np.ndarray,
    delta: np.ndarray,
    changeable: set[str],
    rescore: Rescore,
) -> tuple[np.ndarray, np.ndarray]:
    """Each searched lead's best passing candidate among these (fewest steps, then the highest score; -1: none) and its score.

    A candidate's score does not depend on which others are scored with it, so searching the
    candidates in stages finds what searching them all at once does."""
    keys = bundle.feature_keys
    scores = sigmoid(rescore.candidates(search, delta))
    ok = scores >= defs.mql.threshold
    for criterion in defs.mql.criteria:  # criteria on a count a step changes are checked on the new count
        if criterion.field in changeable:
            j = keys.index(criterion.field)
            column = with_steps(X[search, j][:, None], delta[:, j])  # the candidates' new counts, (leads, m)
            distinct, where = np.unique(column, return_inverse=True)  # counts: a few values, each checked once
            met = np.array([check(criterion, None if np.isnan(x) else x) for x in distinct.tolist()], dtype=bool)
            ok &= met[where.reshape(-1)].reshape(ok.shape)
    sizes = counts.sum(axis=1)
    rank = np.where(ok, -sizes * 2.0 + scores, -np.inf)  # fewest steps first (scores are below 1), then the highest score
    best = rank.argmax(axis=1)
    at = np.arange(len(search))
    return np.where(ok[at, best], best, -1), scores[at, best]


def _hopeful(
    bundle: Bundle,
    defs: Definitions,
    X: np.ndarray,
    search: list[int],
    delta: np.ndarray,
    out: list[ToPass | None],
    budget: int,
    rescore: Rescore,
) -> list[int]:
    """The searched leads that some candidate might pass; the others get the nothing-found answer here.

    When the model never falls as a count rises (`Bundle.never_falls_with`), the row with each count
    at its largest over all candidates scores at least as high as every candidate, so a lead whose
    row stays below the threshold has no passing candidate: one model row instead of all of them
    (at 100,000 demo leads, all but a few in ten thousand).
    """
    raised = np.flatnonzero(delta.max(axis=0) > 0)
    if not len(raised) or not bundle.never_falls_with(raised.tolist()):
        return search
    comparable, top = bound_rows(X[search], delta)
    hopeless = np.zeros(len(search), dtype=bool)
    hopeless[comparable] = sigmoid(rescore.whole(top)) < defs.mql.threshold
    nothing = nothing_note(defs, budget)
    for i in np.asarray(search)[hopeless].tolist():
        out[i] = ToPass([], None, nothing)
    return np.asarray(search)[~hopeless].tolist()


def candidate_rows(rows: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Each lead's encoded row with each candidate's steps added, lead after lead: (leads * m, features).
    A missing count is none yet."""
    # (leads, 1, features) against (m, features): one pass, no repeated copies
    return with_steps(rows[:, None, :], delta).reshape(-1, rows.shape[1])


def with_steps(base: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """`base` with `delta` added where it adds something (broadcast); a missing count is none yet."""
    return np.where(delta > 0, np.nan_to_num(base) + delta, base)


def bound_rows(rows: np.ndarray, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(which rows have every count a step raises, those rows with each such count raised by the most any
    candidate adds): at or above each of the row's candidates in every column. A missing count is left
    out: the candidates that add nothing to it keep it missing, which no number is above or below."""
    most = delta.max(axis=0)
    raised = np.flatnonzero(most > 0)
    comparable = ~np.isnan(rows[:, raised]).any(axis=1)
    top = rows[comparable]
    top[:, raised] += most[raised]
    return comparable, top


def _answer(
    defs: Definitions, keys: Sequence[str], plan: list[Step], counts: np.ndarray, values: Mapping[str, Any], score: float
) -> ToPass:
    changes: list[dict[str, Any]] = []
    for step, n in zip(plan, counts.tolist(), strict=True):
        for j in step.columns if n else ():
            key = keys[j]
            before = values.get(key)
            now = (0 if before is None else before) + n
            changes.append({"feature": key, "label": defs.feature(key).label, "from": before, "to": _plain(now)})
    return ToPass(changes, score, step_note(defs, changes, score))


def step_note(defs: Definitions, changes: Sequence[Mapping[str, Any]], score: float) -> str:
    """The sentence `mql.summary` gains for a lead with next steps: "It would be an MQL after a demo request (score 0.41)."."""
    return f"It would be an MQL after {after_words(defs, changes)} (score {shown_score(score, defs.mql.threshold)})."


def after_words(defs: Definitions, changes: Sequence[Mapping[str, Any]]) -> str:
    """The next steps of a `to_pass` in words: "a demo request and 2 more pricing page views"."""
    events: dict[str, int] = {}
    for c in changes:
        feature = defs.feature(str(c["feature"]))
        n = int((c["to"] or 0) - (c["from"] or 0))
        key = feature.event_type or feature.key
        events[key] = max(events.get(key, 0), n)
    labels = {e.key: e.label for e in defs.event_types}
    words = [_times(n, labels.get(key, key.replace("_", " "))) for key, n in events.items()]
    return " and ".join(words) if len(words) < 3 else ", ".join(words[:-1]) + " and " + words[-1]


def stuck_note(descriptions: Sequence[str]) -> str:
    """Why there is no next step: criteria the lead fails that no actionable feature changes."""
    named = " and ".join(f"“{d}”" for d in descriptions)
    return f"No step marketing can take makes it an MQL while it fails {named}."


def nothing_note(defs: Definitions, budget: int = BUDGET) -> str:
    """Why there is no next step: no combination of a few events reaches the threshold."""
    return (
        f"No small change of actionable features (up to {budget} more events of the kinds marketing can drive) "
        f"reaches the threshold {defs.mql.threshold:.2f}."
    )


def _times(n: int, label: str) -> str:
    """1 → "a demo request", 2 → "2 more demo requests"."""
    if n == 1:
        return f"{'an' if label[:1].lower() in 'aeiou' else 'a'} {label}"
    return f"{n} more {label}s"


def _plain(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value
