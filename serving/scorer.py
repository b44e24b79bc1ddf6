"""The champion: loaded from the MLflow registry, checked against the definitions, swapped on reload.

`Scorer` resolves `models:/sql_likelihood@champion`, refuses a version whose label/feature
fingerprint differs from the current definitions (the service then says why on /readyz and
answers 503), and scores leads: online features, request overrides, the one `explain`, the MQL
verdict. A reload loads the new version completely before swapping one reference, so requests in
flight finish on the object they started with.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from samepage.bundle import CHAMPION, MODEL_NAME, ModelBundle
from samepage.definitions import Definitions
from samepage.errors import InvalidAttribute, NotReady, UnknownLead
from samepage.settings import Settings
from serving.explain import explain
from serving.metrics import Metrics
from serving.mql import verdict

log = logging.getLogger("samepage.serving")

_mlflow_lock = threading.Lock()  # mlflow's tracking/registry URIs are process-global


@dataclass
class Champion:
    """One loaded champion version and the online features it reads."""

    name: str
    version: str
    bundle: ModelBundle
    online: Any  # features.store.OnlineFeatures (bound to the version's feature service)
    tags: dict[str, str]
    run_id: str | None
    metrics: dict[str, float]
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class Scorer:
    """Holds the current champion (or why there is none) and scores leads with it."""

    def __init__(self, settings: Settings, defs: Definitions, metrics: Metrics | None = None, model_name: str = MODEL_NAME) -> None:
        self.settings = settings
        self.defs = defs
        self.metrics = metrics or Metrics()
        self.model_name = model_name
        self.champion: Champion | None = None
        self.reason: str = "the champion has not been loaded yet"
        self._seen_version: str | None = None  # last version looked at (loaded or refused)
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

                client = MlflowClient(tracking_uri=self.settings.tracking_uri, registry_uri=self.settings.tracking_uri)
                try:
                    mv = client.get_model_version_by_alias(self.model_name, CHAMPION)
                except MlflowException:
                    return self._refuse(None, f"no champion: `{self.model_name}@{CHAMPION}` is not in the registry (run `samepage train`)")
                version = str(mv.version)
                if version == self._seen_version and not force:
                    return False
                tags = dict(mv.tags or {})
                problem = self._fit_problem(version, tags)
                if problem:
                    return self._refuse(version, problem)
                champion = self._load(client, version, tags, mv.run_id)
            except Exception as exc:  # a broken registry or artifact must not take the service down
                log.error("champion load failed", extra={"event": "model_load_failed", "error": type(exc).__name__})
                self.metrics.reloads.labels("failed").inc()
                if self.champion is None:
                    self.reason = f"the champion could not be loaded ({type(exc).__name__}: {exc})"
                return False
            if champion.bundle.feature_keys != self.defs.feature_keys:
                return self._refuse(version, f"champion v{version} has features {champion.bundle.feature_keys}, the definitions have {self.defs.feature_keys}")
            self.champion = champion  # the one atomic swap; in-flight requests keep the old object
            self._seen_version = version
            self.reason = ""
            self.metrics.set_model(self.model_name, version, self.defs.version_string)
            self.metrics.reloads.labels("loaded").inc()
            log.info("champion loaded", extra={"event": "model_loaded", "model_version": version})
            refreeze()
            return True

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
        changed = self.champion is not None or self.reason != reason
        self.champion = None
        self._seen_version = version
        self.reason = reason
        self.metrics.set_model(None, None, None)
        if changed:
            log.warning("not ready", extra={"event": "not_ready", "model_version": version})
        return changed

    def _load(self, client: Any, version: str, tags: dict[str, str], run_id: str | None) -> Champion:
        import mlflow
        import mlflow.pyfunc

        from features.store import OnlineFeatures

        with _mlflow_lock:
            mlflow.set_tracking_uri(self.settings.tracking_uri)
            mlflow.set_registry_uri(self.settings.tracking_uri)
            model = mlflow.pyfunc.load_model(f"models:/{self.model_name}/{version}")
        bundle: ModelBundle = model.unwrap_python_model().bundle
        metrics: dict[str, float] = {}
        if run_id:
            try:
                metrics = {k: float(v) for k, v in client.get_run(run_id).data.metrics.items()}
            except Exception:  # metrics are informative; a missing run must not block serving
                metrics = {}
        online = OnlineFeatures(self.settings, self.defs, feature_service=tags.get("feature_service"))
        return Champion(self.model_name, version, bundle, online, tags, run_id, metrics)

    async def watch(self) -> None:
        """Poll the alias every `settings.reload_seconds` (a background task of the app)."""
        while True:
            await asyncio.sleep(self.settings.reload_seconds)
            await asyncio.to_thread(self.refresh)

    # -- scoring ------------------------------------------------------------------------------
    def current(self) -> Champion:
        champion = self.champion
        if champion is None:
            raise NotReady(self.reason)
        return champion

    def score(
        self, leads: list[tuple[str, dict[str, Any]]], champion: Champion | None = None, where: str = ""
    ) -> list[dict[str, Any]]:
        """Contract `ScoreOut` dicts for (lead_id, attributes) pairs, in order.

        `UnknownLead` names leads unknown to the store that came without attributes; `InvalidAttribute`
        an attribute whose value does not fit its feature (`where` prefixes its location); `NotReady`.
        """
        champ = champion or self.current()
        ids = [lead_id for lead_id, _ in leads]
        overrides = [attrs for _, attrs in leads]
        now = datetime.now(UTC)
        try:
            frame = champ.online.get(ids, overrides, now)
        except InvalidAttribute as exc:
            raise self._locate(champ, ids, overrides, now, exc).at(where) from None
        unknown = [lid for lid, ov, known in zip(ids, overrides, frame["known"].tolist(), strict=True) if not known and not ov]
        if unknown:
            raise UnknownLead(unknown, "unknown to the feature store and no attributes were given to score from")
        explanations = explain(champ.bundle, self.defs, frame)
        feature_keys = set(champ.bundle.feature_keys)
        extra_fields = [c.field for c in self.defs.mql.criteria if c.field not in feature_keys]
        scored_at = now.isoformat().replace("+00:00", "Z")
        model = {"name": champ.name, "version": champ.version}
        dv = self.defs.version_string
        results: list[dict[str, Any]] = []
        for lead_id, attrs, exp in zip(ids, overrides, explanations, strict=True):
            values = {c["feature"]: c["value"] for c in exp.contributions}
            if extra_fields:
                values.update(self._extra_values(champ, lead_id, attrs, extra_fields))
            mql = verdict(self.defs, exp.score, values)
            results.append(
                {
                    "lead_id": lead_id,
                    "score": exp.score,
                    "mql": mql.as_dict(),
                    "explanation": exp.as_dict(),
                    "model": model,
                    "definitions_version": dv,
                    "scored_at": scored_at,
                }
            )
        self.metrics.observe_scores(champ.version, [r["score"] for r in results], [r["mql"]["passed"] for r in results])
        return results

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
                champ.online.get([lead_id], [attrs], now)
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


def refreeze() -> None:
    """Move what is loaded out of the collector's sight: full GC passes dominate tail latency."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
