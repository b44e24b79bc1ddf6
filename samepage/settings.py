"""One `Settings` object, read from the environment (prefix SAMEPAGE_) at the edge and passed in."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where state lives and which servers to use; embedded defaults need none."""

    model_config = SettingsConfigDict(env_prefix="SAMEPAGE_", extra="ignore")

    home: Path = Field(Path("workspace"), description="Workspace folder holding all state")
    definitions: Path = Field(Path("configs/definitions.yaml"), description="Shared definitions file")
    api_keys: str = Field("", description="Comma-separated API keys; empty: `up` makes one")

    feature_project: str = Field(
        "samepage", pattern=r"^[a-z][a-z0-9_]*$", description="Feast project name (keys in a shared online store)"
    )
    online_store: Literal["sqlite", "redis", "postgres"] = "sqlite"
    redis_url: str = Field("localhost:6379", description="Redis host:port for the online store")
    postgres_host: str = "127.0.0.1"
    postgres_port: int = 5432
    postgres_db: str = "postgres"
    postgres_user: str = "postgres"
    postgres_password: str = ""
    postgres_schema: str = "samepage"

    mlflow_tracking_uri: str | None = Field(None, description="Default: SQLite in the workspace")
    records_url: str | None = Field(None, description="SQLAlchemy URL of the lead-record store")

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(
        0, ge=0, description="Serving worker processes (each loads the champion and follows its alias); 0: one per core"
    )
    reload_seconds: float = Field(30.0, description="How often serving checks the champion alias")
    startup_wait_seconds: float = Field(
        0.0, ge=0, description="How long startup waits for the champion before listening (0: listen at once, load it meanwhile)"
    )
    allowed_hosts: str = Field(
        "", description="Comma-separated Host names the service answers (`*`: any); empty: the bind host and loopback names"
    )
    public_metrics: bool = Field(False, description="Serve /metrics without an API key off loopback (e.g. behind a firewall)")
    session_secret: str = Field("", description="Signs page sessions; empty: derived from the API keys")
    online_refresh_seconds: float = Field(
        300.0, ge=0, description="How often serving refreshes the online store (new imports, unpushed API rows); 0: never"
    )
    event_future_seconds: float = Field(
        300.0, ge=0, description="How far in the future an ingested event's time may be (clocks differ); later is refused"
    )

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    def ensure_home(self) -> Path:
        """The workspace folder, created owner-only (0700): it holds leads' personal data and keys."""
        home = self.home_dir
        if not home.exists():
            home.mkdir(mode=0o700, parents=True, exist_ok=True)
            home.chmod(0o700)  # mkdir's mode is filtered by the umask
        return home

    @property
    def data_dir(self) -> Path:
        """Canonical tables: leads, events, stages (Parquet)."""
        return self.home_dir / "data"

    @property
    def feature_repo_dir(self) -> Path:
        """Generated Feast repo: feature_store.yaml, registry, offline sources, online store."""
        return self.home_dir / "feature_repo"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home_dir / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str:
        return (self.home_dir / "mlartifacts").as_uri()

    @property
    def records_database_url(self) -> str:
        return self.records_url or f"sqlite:///{self.home_dir / 'records.db'}"

    @property
    def hosts(self) -> list[str]:
        """The Host names the service answers; by default the bind host and the loopback names.

        Bound to every interface (0.0.0.0, ::) with no list set, any name is answered: the machine's
        names are not known here, and off loopback the pages need a login and the API a key anyway.
        """
        given = [h.strip() for h in self.allowed_hosts.split(",") if h.strip()]
        if not given:
            if self.host.strip("[]") in ("0.0.0.0", "::", ""):
                return ["*"]
            given = [self.host, "localhost", "127.0.0.1", "::1"]
        # A Host header brackets an IPv6 literal ("[::1]:8000"), so the list does too.
        names = [f"[{h}]" if ":" in h and not h.startswith("[") else h for h in given]
        return list(dict.fromkeys(n.lower() for n in names))

    @property
    def keys(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]
