"""The workspace's Feast store reading through Feast's file (Dask) offline store: the reference the
tests hold the repo's DuckDB offline store to, and an oracle for Feast's own `materialize`."""

from __future__ import annotations

import yaml
from feast import FeatureStore
from feast.repo_config import RepoConfig

from features.feast_repo import feature_store_yaml, open_store
from samepage.settings import Settings


def file_store(settings: Settings) -> FeatureStore:
    open_store(settings)  # the repo's config written, as every reader does
    config = yaml.safe_load(feature_store_yaml(settings))
    config["offline_store"] = {"type": "file"}
    store = FeatureStore(config=RepoConfig(repo_path=settings.feature_repo_dir, **config))
    assert store.config.offline_store.type == "file"
    return store
