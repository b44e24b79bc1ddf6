"""Generated Feast objects and configuration follow the definitions and the settings."""

from __future__ import annotations

import threading

import pandas as pd
import yaml
from feast.types import Bool, Float64, Int32, String, UnixTimestamp

from features.feast_repo import (
    ATTRIBUTES_VIEW,
    DEFAULT_SERVICE,
    ENGAGEMENT_VIEW,
    feast_objects,
    feature_store_yaml,
    open_store,
)
from features.transform import attribute_rows, needed_columns
from samepage.definitions import Definitions
from samepage.settings import Settings
from tests.conftest import make_lead


def objects(settings: Settings, defs: Definitions, **lead: object):  # noqa: ANN201 (Feast objects)
    _, kinds = attribute_rows(pd.DataFrame([make_lead(**lead)]), defs)
    return feast_objects(settings, defs, kinds, with_engagement=True)


def test_views_hold_every_feature_with_its_type(settings: Settings, definitions: Definitions) -> None:
    entity, views, service = objects(settings, definitions, is_partner=True)
    assert entity.join_key == "lead_id"
    attrs = {f.name: f.dtype for f in views[ATTRIBUTES_VIEW].features}
    engagement = {f.name: f.dtype for f in views[ENGAGEMENT_VIEW].features}
    expected_attr_type = {"category": String, "number": Float64, "boolean": Bool}
    for f in definitions.features:
        if f.kind == "attribute":
            assert attrs[f.column] == expected_attr_type[str(f.type)], f.key
        elif f.kind in ("event_count", "distinct_channels"):
            assert engagement[f.key] == Int32, f.key
    assert attrs["created_at"] == UnixTimestamp and engagement["last_activity_at"] == UnixTimestamp
    assert attrs["job_title"] == String  # not a feature, kept so serving can show who the lead is
    assert attrs["is_partner"] == Bool
    labels = {f.name: f.description for f in views[ENGAGEMENT_VIEW].features}
    assert labels["page_views_30d"] == definitions.feature("page_views_30d").label


def test_service_has_every_field_the_features_are_derived_from(settings: Settings, definitions: Definitions) -> None:
    _, _, service = objects(settings, definitions)
    assert service.name == DEFAULT_SERVICE
    served = {(p.name, f.name) for p in service.feature_view_projections for f in p.features}
    for f in definitions.features:
        if f.kind == "attribute":
            assert (ATTRIBUTES_VIEW, f.column) in served
        elif f.kind in ("event_count", "distinct_channels"):
            assert (ENGAGEMENT_VIEW, f.key) in served
        elif f.kind == "recency":
            assert (ENGAGEMENT_VIEW, "last_activity_at") in served
        elif f.kind == "age":
            assert (ATTRIBUTES_VIEW, "created_at") in served
    for column in needed_columns(definitions):
        assert (ATTRIBUTES_VIEW, column) in served
    assert service.tags["definitions_version"] == definitions.version_string


def test_yaml_follows_the_settings(settings: Settings) -> None:
    sqlite = yaml.safe_load(feature_store_yaml(settings))
    assert sqlite["provider"] == "local" and sqlite["offline_store"]["type"] == "duckdb"
    assert sqlite["online_store"]["type"] == "sqlite"
    assert sqlite["registry"].startswith(str(settings.home_dir))
    redis = yaml.safe_load(feature_store_yaml(settings.model_copy(update={"online_store": "redis"})))
    assert redis["online_store"] == {"type": "redis", "connection_string": "localhost:6379"}
    pg = yaml.safe_load(feature_store_yaml(settings.model_copy(update={"online_store": "postgres", "postgres_port": 5433})))
    assert pg["online_store"]["type"] == "postgres" and pg["online_store"]["port"] == 5433
    assert "# " in feature_store_yaml(settings)  # commented for the people who open it


def test_open_store_writes_a_config_feast_accepts(settings: Settings) -> None:
    store = open_store(settings)
    assert store.project == settings.feature_project
    assert store.config.online_store.type == "sqlite"
    assert (settings.feature_repo_dir / "feature_store.yaml").exists()


def test_a_password_with_yaml_syntax_stays_one_string(settings: Settings) -> None:
    tricky = "p#ss: \"word' \\ # not a comment"
    pg = yaml.safe_load(feature_store_yaml(settings.model_copy(update={"online_store": "postgres", "postgres_password": tricky})))
    assert pg["online_store"]["password"] == tricky
    assert pg["online_store"]["user"] == settings.postgres_user


def test_the_config_and_the_workspace_are_owner_only(settings: Settings) -> None:
    open_store(settings)
    assert settings.home_dir.stat().st_mode & 0o777 == 0o700
    config = settings.feature_repo_dir / "feature_store.yaml"
    assert config.stat().st_mode & 0o777 == 0o600
    config.chmod(0o644)  # as an older version left it
    open_store(settings)
    assert config.stat().st_mode & 0o777 == 0o600


def test_threads_opening_the_store_at_once_all_open_it(settings: Settings) -> None:
    # The service's champion loader and its online refresher open the store together at start-up, on
    # a workspace whose config is out of date (a copied workspace): a shared temporary file let one
    # rename the other's half-written config away, and the loser failed (the rules never scored).
    config = settings.feature_repo_dir / "feature_store.yaml"
    open_store(settings)
    for _round in range(20):
        config.write_text("# out of date\n", encoding="utf-8")
        start = threading.Barrier(6)
        failures: list[BaseException] = []
        threads = [threading.Thread(target=_open_at_once, args=(settings, start, failures)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == [], failures
        assert config.read_text(encoding="utf-8") == feature_store_yaml(settings)
    assert not list(settings.feature_repo_dir.glob("*.tmp*"))  # no temporary file left behind


def _open_at_once(settings: Settings, start: threading.Barrier, failures: list[BaseException]) -> None:
    start.wait()
    try:
        open_store(settings)
    except BaseException as exc:  # noqa: BLE001 - collected for the assertion
        failures.append(exc)
