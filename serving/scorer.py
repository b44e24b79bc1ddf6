"""The champion: loaded from the MLflow registry, checked against the definitions, swapped on reload.

`Scorer` resolves `models:/sql_likelihood@champion` and refuses a version whose label/feature
fingerprint differs from the current definitions. Without a champion that fits (cold start), it
scores with the team's points rules from the definitions (`points_rules`, kind "rules", not
calibrated) and says why on /readyz; only when even those cannot score (no feature store yet) does
it answer 503. The first load runs in a background thread (`watch`), so a registry that does not
answer never keeps the service from listening; /readyz then gives a generic reason and the
driver's error text goes to the log only. It scores leads: online features, request overrides, the one `explain`, the MQL
verdict with `to_pass` (serving.topass), the grade, and the trend from `history` (the lead's previous score).
A reload loads the new version completely before swapping one reference, so requests in flight finish on
the object they started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from samepage.answers import Vocabulary
from samepage.bundle import CHAMPION, MODEL_NAME, Bundle, PointsBundle
from samepage.definitions import Definitions
from samepage.errors import InvalidAttribute, NotReady, UnknownLead
from samepage.settings import Settings
from serving.explain import Explanation, explain_columns
from serving.metrics import Metrics
from serving.mql import verdicts as mql_verdicts
from serving.topass import ToPass, to_pass

log = logging.getLogger("samepage.serving")

T = TypeVar("T")
_mlflow_lock = threading.Lock()  # mlflow's tracking/registry URIs are process-global

RULES_NAME = "points_rules"  # the cold-start scorer's name in every answer
NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}  # the registry answered: no such model or alias
# What /readyz says; the driver's own error text goes to the log only (it can name hosts, users, paths).
STILL_LOADING = "the champion is still being loaded from the model registry"
REGISTRY_UNREACHABLE = "the model registry is unreachable (the service log has the details)"
LOAD_FAILED = "the champion could not be loaded (the service log has the details)"


class ScoreHistory(Protocol):
    """Where a lead's previous score comes from (the record store, or the writer that feeds it)."""

    def previous_scores(self, lead_ids: list[str]) -> dict[str, tuple[float, datetime]]: ...


@dataclass
class Champion:
    """What scores: a registered champion version, or the team's points rules (cold start)."""

    name: str
    version: str
    bundle: Bundle
    online: Any  # features.store.OnlineFeatures (bound to the version's feature service)
    tags: dict[str, str]
    run_id: str | None
    metrics: dict[str, float]
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    registered: bool = True  # False: the definitions' points rules standing in for a champion

    @property
    def kind(self) -> str:
        """The contract's `model.kind`: "rules" when the team's points rules score, else "learned"."""
        return "rules" if self.bundle.kind == PointsBundle.kind else "learned"

    @property
    def ref(self) -> dict[str, Any]:
        """The contract's `model` object of every answer."""
        return {"name": self.name, "version": self.version, "kind": self.kind, "calibrated": self.bundle.calibrated}

    @cached_property
    def training_ranges(self) -> list[tuple[str, float, float]]:
        """(feature, min, max) the bundle recorded in `meta["feature_ranges"]`, for its numeric features."""
        ranges = self.bundle.meta.get("feature_ranges") or {}
        numeric = set(self.bundle.feature_keys) - set(self.bundle.encoder.categories)
        out = []
        for key, bounds in ranges.items():
            try:
                lo, hi = (float(b) for b in bounds)
            except (TypeError, ValueError):  # a range written for a category, or none at all: nothing to check
                continue
            if key in numeric and not (math.isnan(lo) or math.isnan(hi)):
                out.append((key, lo, hi))
        return out

    @cached_property
    def training_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """`training_ranges`' minima and maxima as columns, to test every feature of a batch at once."""
        ranges = self.training_ranges
        return np.array([[lo] for _k, lo, _h in ranges]), np.array([[hi] for _k, _l, hi in ranges])


class Scorer:
    """Holds the current champion (or why there is none) and scores leads with it."""

    def __init__(
        self,
        settings: Settings,
        defs: Definitions,
        metrics: Metrics | None = None,
        model_name: str = MODEL_NAME,
        history: ScoreHistory | None = None,
        threads: int | None = None,
        online: bool = True,
    ) -> None:
        self.settings = settings
        # False: a champion comes without the Feast online store (its callers bring each batch's
        # features, as `score --all` does), and Feast is not even imported (~3 s)
        self.online = online
        self.threads = threads  # LightGBM's for a batch: None, every core; 1 in each of score --all's processes
        self.history = history  # previous scores for `trend` (None: every answer's trend is null)
        self.defs = defs
        self.metrics = metrics or Metrics()
        self.model_name = model_name
        self.champion: Champion | None = None  # what scores: the champion, else the points rules
        self.reason: str = STILL_LOADING  # why no registered champion scores ("" when one does)
        self.loaded = threading.Event()  # set once the first look-up of the champion has finished
        self._rules: Champion | None = None  # the points rules with their online features, made once
        self._seen_version: str | None = None  # last version looked at (loaded or refused)
        self._rules_problem = ""
        self._lock = threading.Lock()

    # -- loading ------------------------------------------------------------------------------
    def refresh(self, force: bool = False) -> bool:
        """Follow the alias: load a version it points to that differs from the last one seen.

        Returns True when the served state changed. Never raises: problems become the reason.
        """
        with self._lock:
            try:
                from mlflow.exceptions import MlflowException
                from mlflow.tracking import MlflowClient

                try:
                    client = MlflowClient(tracking_uri=self.settings.tracking_uri, registry_uri=self.settings.tracking_uri)
                    mv = client.get_model_version_by_alias(self.model_name, CHAMPION)
                except MlflowException as exc:
                    if exc.error_code not in NOT_FOUND:  # the registry did not answer: not the same as "no champion"
                        return self._failed(exc, REGISTRY_UNREACHABLE)
                    missing = f"no champion: `{self.model_name}@{CHAMPION}` is not in the registry (run `samepage train`)"
                    return self._refuse(None, missing)
                except Exception as exc:  # a driver's error (a database URL that does not answer, a missing module)
                    return self._failed(exc, REGISTRY_UNREACHABLE)
                version = str(mv.version)
                if version == self._seen_version and not force:
                    return False
                tags = dict(mv.tags or {})
                problem = self._fit_problem(version, tags)
                if problem:
                    return self._refuse(version, problem)
                champion = self._load(client, version, tags, mv.run_id)
            except Exception as exc:  # a broken registry or artifact must not take the service down
                return self._failed(exc, LOAD_FAILED)
            if champion.bundle.feature_keys != self.defs.feature_keys:
                keys = f"champion v{version} has features {champion.bundle.feature_keys}, definitions {self.defs.feature_keys}"
                return self._refuse(version, keys)
            self.champion = champion  # the one atomic swap; in-flight requests keep the old object
            self._seen_version = version
            self.reason = ""
            self.metrics.set_model(self.model_name, version, self.defs.version_string, ready=True)
            self.metrics.reloads.labels("loaded").inc()
            log.info("champion loaded", extra={"event": "model_loaded", "model_version": version})
            refreeze()
            return True

    def _failed(self, exc: Exception, reason: str) -> bool:
        """A load that failed: the driver's words go to the log only; /readyz gets the generic `reason`."""
        detail = str(exc)[:2000]
        log.error("champion load failed: %s", detail, extra={"event": "model_load_failed", "error": type(exc).__name__})
        self.metrics.reloads.labels("failed").inc()
        if self.champion is None or not self.champion.registered:
            return self._refuse(None, reason)
        return False  # the champion already loaded keeps serving

    def first_load(self) -> None:
        """Startup, off the event loop: the points rules score at once, then the champion is looked up.

        A registry that does not answer can take minutes; meanwhile the service listens and answers
        as in cold start. `loaded` is set when the first look-up has finished either way.
        """
        try:
            if self.champion is None:
                rules = self._rules_champion()
                if rules is not None:
                    self.champion = rules
                    self.metrics.set_model(rules.name, rules.version, self.defs.version_string, ready=False)
            self.refresh()
        finally:
            self.loaded.set()

    def _fit_problem(self, version: str, tags: dict[str, str]) -> str | None:
        fp = tags.get("fingerprint")
        if fp != self.defs.fingerprint:
            trained = tags.get("definitions_version", "unknown definitions")
            return (
                f"champion {self.model_name} v{version} was trained under other label/feature definitions "
                f"({trained}, fingerprint {fp or 'missing'}); the current definitions {self.defs.version_string} "
                f"have fingerprint {self.defs.fingerprint}: retrain with `samepage train`"
            )
        return None

    def _refuse(self, version: str | None, reason: str) -> bool:
        """No registered champion scores: fall back to the points rules (cold start), or to none."""
        rules = self._rules_champion()
        if rules is None:
            reason = f"{reason}; the team's points rules cannot score either ({self._rules_problem})"
        changed = self.champion is not rules or self.reason != reason
        self._seen_version = version
        self.champion = rules
        self.reason = reason
        if rules is None:
            self.metrics.set_model(None, None, None, ready=False)
        else:
            self.metrics.set_model(rules.name, rules.version, self.defs.version_string, ready=False)
        if changed:
            what = "not ready" if rules is None else "no champion: scoring with the team's points rules"
            log.warning(what, extra={"event": "not_ready" if rules is None else "cold_start", "model_version": version})
        return changed

    def _rules_champion(self) -> Champion | None:
        """The definitions' points rules on the default feature service; None (with the problem) without a feature store."""
        if self._rules is None:
            from features.store import OnlineFeatures

            try:
                online = OnlineFeatures(self.settings, self.defs)
            except Exception as exc:  # no feature store yet (`samepage features` not run)
                self._rules_problem = f"{type(exc).__name__}: {exc}"
                return None
            bundle = PointsBundle.from_definitions(self.defs)
            self._rules = Champion(RULES_NAME, self.defs.version_string, bundle, online, {}, None, {}, registered=False)
        return self._rules

    @property
    def cold_start(self) -> bool:
        """Whether the team's points rules are scoring because no registered champion fits."""
        return self.champion is not None and not self.champion.registered

    def _load(self, client: Any, version: str, tags: dict[str, str], run_id: str | None) -> Champion:
        import mlflow
        import mlflow.pyfunc

        with _mlflow_lock:
            mlflow.set_tracking_uri(self.settings.tracking_uri)
            mlflow.set_registry_uri(self.settings.tracking_uri)
            model = mlflow.pyfunc.load_model(f"models:/{self.model_name}/{version}")
        bundle: Bundle = model.unwrap_python_model().bundle
        metrics: dict[str, float] = {}
        if run_id:
            try:
                metrics = {k: float(v) for k, v in client.get_run(run_id).data.metrics.items()}
            except Exception:  # metrics are informative; a missing run must not block serving
                metrics = {}
        online = None
        if self.online:
            from features.store import OnlineFeatures

            online = OnlineFeatures(self.settings, self.defs, feature_service=tags.get("feature_service"))
        return Champion(self.model_name, version, bundle, online, tags, run_id, metrics)

    async def watch(self) -> None:
        """Load the champion, then poll the alias every `settings.reload_seconds` (a background task of the app)."""
        await in_daemon_thread(self.first_load)
        while True:
            await asyncio.sleep(self.settings.reload_seconds)
            await in_daemon_thread(self.refresh)

    # -- scoring ------------------------------------------------------------------------------
    def current(self) -> Champion:
        champion = self.champion
        if champion is None:
            raise NotReady(self.reason)
        return champion

    def drift(self) -> dict[str, Any] | None:
        """The scoring model's drift check from its training (None: no model, or the points rules)."""
        champion = self.champion
        if champion is None or not champion.registered:
            return None
        drift = champion.bundle.meta.get("drift")
        return drift if isinstance(drift, dict) else None

    def score(
        self,
        leads: list[tuple[str, dict[str, Any]]],
        champion: Champion | None = None,
        where: str = "",
        suggest: bool = True,
        now: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Contract `ScoreOut` dicts for (lead_id, attributes) pairs, in order: `scored`'s answers, whole."""
        return [s.contract() for s in self.scored(leads, champion, where, suggest, now)]

    def scored(
        self,
        leads: list[tuple[str, dict[str, Any]]],
        champion: Champion | None = None,
        where: str = "",
        suggest: bool = True,
        now: datetime | None = None,
    ) -> list[Scored]:
        """The answers for (lead_id, attributes) pairs, in order, their explanations still arrays (`suggest=False`:
        no `to_pass` search, every `to_pass` null; only bench/to_pass.py times that). `now`: the as-of time
        (default: now; `score --all` passes its one run time to every chunk).

        `UnknownLead` names leads unknown to the store that came without attributes; `InvalidAttribute`
        an attribute whose value does not fit its feature (`where` prefixes its location); `NotReady`.
        """
        champ = champion or self.current()
        ids = [lead_id for lead_id, _ in leads]
        overrides = [attrs for _, attrs in leads]
        now = now or datetime.now(UTC)
        try:
            got = champ.online.columns(ids, overrides, now)
        except InvalidAttribute as exc:
            raise self._locate(champ, ids, overrides, now, exc).at(where) from None
        unknown = [lid for lid, ov, known in zip(ids, overrides, got.known.tolist(), strict=True) if not known and not ov]
        if unknown:
            raise UnknownLead(unknown, "unknown to the feature store and no attributes were given to score from")
        self._count_out_of_range(champ, got.values)
        # One path: derived arrays -> one encoded matrix -> contributions (the score is their sum);
        # the same matrix feeds the to_pass search.
        columns = [got.values[k] for k in champ.bundle.feature_keys]
        X = champ.bundle.encoder.transform_columns(columns)
        explanations = explain_columns(champ.bundle, self.defs, columns, X, self.threads)
        feature_keys = set(champ.bundle.feature_keys)
        extra_fields = [c.field for c in self.defs.mql.criteria if c.field not in feature_keys]
        scored_at = now.isoformat().replace("+00:00", "Z")
        model = champ.ref
        dv = self.defs.version_string
        values_all: list[dict[str, Any]] = []
        for lead_id, attrs, exp in zip(ids, overrides, explanations, strict=True):
            values = exp.values
            if extra_fields:
                values = {**values, **self._extra_values(champ, lead_id, attrs, extra_fields)}
            values_all.append(values)
        scores = [exp.score for exp in explanations]
        verdicts = mql_verdicts(self.defs, scores, values_all)
        search = suggest and not all(v.passed for v in verdicts)
        steps: list[ToPass | None] = [None] * len(ids)
        if search:
            # the leads' own logits, as their explanations add up: the search rescores only what its steps change
            logits = np.array([exp.base_value for exp in explanations]) + np.array([exp.row for exp in explanations]).sum(axis=1)
            steps = to_pass(champ.bundle, self.defs, X, verdicts, values_all, threads=self.threads, logits=logits)
        previous = self.history.previous_scores(ids) if self.history is not None else {}
        results: list[Scored] = []
        grades = self.defs.grades_of(scores)
        for lead_id, exp, mql, step, grade in zip(ids, explanations, verdicts, steps, grades, strict=True):
            answer = mql.as_dict()
            if step is not None:
                answer["summary"] = f"{answer['summary']} {step.note}"
            answer["to_pass"] = None if step is None else step.changes
            answer["score_if"] = None if step is None else step.score_if
            head = {
                "lead_id": lead_id,
                "score": exp.score,
                "mql": answer,
                "explanation": None,  # its place among the keys: Scored fills it in
                "model": model,
                "grade": grade,
                "trend": trend(exp.score, previous.get(lead_id)),
                "definitions_version": dv,
                "scored_at": scored_at,
            }
            results.append(Scored(head, exp))
        self.metrics.observe_scores(champ.version, scores, [v.passed for v in verdicts])
        return results

    def _count_out_of_range(self, champ: Champion, columns: Mapping[str, np.ndarray]) -> None:
        """Prometheus: leads scored with a numeric feature outside the range the model was trained on."""
        ranges = champ.training_ranges
        if not ranges:
            return
        keys = [key for key, _lo, _hi in ranges]
        try:  # numbers and None (NaN): the usual case, all features in one array
            values = np.array([columns[key] for key in keys], dtype=float)
        except (TypeError, ValueError):  # text in a number column: each as the encoder coerces it
            values = np.array([_as_numbers(columns[key]) for key in keys], dtype=float)
        lo, hi = champ.training_bounds
        with np.errstate(invalid="ignore"):
            outside = np.count_nonzero((values < lo) | (values > hi), axis=1)
        for key, count in zip(keys, outside.tolist(), strict=True):
            if count:
                self.metrics.out_of_range.labels(key).inc(count)

    @staticmethod
    def _locate(
        champ: Champion, ids: list[str], overrides: list[dict[str, Any]], now: datetime, exc: InvalidAttribute
    ) -> InvalidAttribute:
        """Which lead of a batch carries the bad attribute: `leads[3].attributes.employees: ...`."""
        if len(ids) == 1:
            return exc
        for i, (lead_id, attrs) in enumerate(zip(ids, overrides, strict=True)):
            if not attrs:
                continue
            try:
                champ.online.columns([lead_id], [attrs], now)
            except InvalidAttribute as one:
                return one.at(f"leads[{i}].")
        return exc

    @staticmethod
    def _extra_values(champ: Champion, lead_id: str, attrs: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        """Criterion fields that are lead attributes, not features: the request's, else the store's."""
        out = {f: attrs[f] for f in fields if f in attrs}
        if len(out) < len(fields):
            stored = champ.online.attributes(lead_id) or {}
            out.update({f: stored.get(f) for f in fields if f not in out})
        return out


@dataclass(slots=True)
class Scored:
    """One lead's answer: the contract's `ScoreOut` fields with the explanation kept as arrays. The API
    answers `contract()`; the record store keeps `record()` (`samepage.answers`' compact form); `score --all`
    writes its output row from `explanation`'s arrays, so nobody builds the 28 contribution dicts it does not read."""

    answer: dict[str, Any]  # ScoreOut's keys in the contract's order; "explanation" is None (a placeholder)
    explanation: Explanation

    def contract(self) -> dict[str, Any]:
        """The contract's `ScoreOut` dict."""
        return {**self.answer, "explanation": self.explanation.as_dict()}

    def record(self) -> dict[str, Any]:
        """The stored form: `samepage.answers.expand` with `explanation.vocabulary` gives `contract()` back."""
        return {**self.answer, "explanation": self.explanation.stored()}

    @classmethod
    def from_record(cls, record: dict[str, Any], vocab: Vocabulary) -> Scored:
        """A stored answer (`record()`, e.g. back from a Spark executor as JSON) naming `vocab`."""
        return cls({**record, "explanation": None}, Explanation.from_stored(record["score"], record["explanation"], vocab))


def _as_numbers(column: Any) -> np.ndarray:
    try:
        return np.asarray(column, dtype=float)
    except (TypeError, ValueError):
        return pd.to_numeric(pd.Series(column, dtype=object), errors="coerce").to_numpy(dtype=float)


def trend(score: float, previous: tuple[float, datetime] | None) -> dict[str, Any] | None:
    """The contract's `trend`: the change since the lead's previous score (None: never scored before)."""
    if previous is None:
        return None
    before, at = previous
    return {"previous_score": before, "previous_at": _iso(at), "delta": score - before}


@functools.lru_cache(maxsize=1024)  # score --all: a million trends, their previous times from a few runs' chunks
def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def in_daemon_thread(fn: Callable[[], T]) -> T:
    """`fn()` in a daemon thread: unlike `asyncio.to_thread`, a hung registry call never holds up shutdown."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():  # cancelled meanwhile: nobody waits any more
            outcome()

    def run() -> None:
        outcome: Callable[[], None]
        try:
            outcome = functools.partial(future.set_result, fn())
        except BaseException as exc:
            outcome = functools.partial(future.set_exception, exc)
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
            loop.call_soon_threadsafe(settle, outcome)

    threading.Thread(target=run, name="samepage-champion", daemon=True).start()
    return await future


# Young-generation threshold while serving. Python's default (700 allocations) ran a young collection
# every ~20 scores and a generation-1 pass (0.25-1.7 ms) about once in 200, pauses that land on the
# tail; at 50,000 none ran in 3,000 scores after start-up (bench/serve.py's workspace).
SERVING_GC_THRESHOLD = (50_000, 20, 10)


def refreeze() -> None:
    """Move what is loaded out of the collector's sight (full GC passes dominate tail latency), and
    collect the young generation rarely (`SERVING_GC_THRESHOLD`)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLD)
