"""Cloud API sessions (``engine: cloud``) in test configs, built in Python from a
parsed config: a session of it becomes a Cloud API one with the given settings."""

from __future__ import annotations

from dataclasses import replace

from bridge.config import Config, SessionConfig
from bridge.config.schema import CloudConfig, CloudTemplate

TEMPLATES = (
    CloudTemplate("order_update", language="pt_BR", params=2),
    CloudTemplate("hello"),
)

CLOUD = CloudConfig(
    phone_number_id="109876543210",
    access_token="EAAG-test-token",
    app_secret="app-secret",
    verify_token="verify-token",
    templates=TEMPLATES,
)


def with_cloud(config: Config, key: str, cloud: CloudConfig = CLOUD) -> Config:
    """``config`` with session ``key`` on the Cloud API (``engine: cloud``)."""

    def converted(session: SessionConfig) -> SessionConfig:
        if session.key != key:
            return session
        return replace(session, engine="cloud", cloud=cloud)

    companies = tuple(
        replace(company, sessions=tuple(converted(s) for s in company.sessions))
        for company in config.companies
    )
    if not any(s.key == key for c in companies for s in c.sessions):
        raise ValueError(f"no session {key} in the config")
    return replace(config, companies=companies)
