"""The sections of the config, each read by its dataclass (fields.py) and then
checked where keys depend on one another; the top level ties them together.

The companies and their sessions are read by companies.py; whether Matrix is used
(which makes ``homeserver`` and the appservice tokens required) follows from them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bridge.config.companies import read_companies
from bridge.config.fields import read_fields, read_key, read_section
from bridge.config.mapping import MappingReader
from bridge.config.schema import (
    GENERATE,
    AppserviceConfig,
    ClusterConfig,
    CompanyConfig,
    Config,
    DatabaseConfig,
    HomeserverConfig,
    HttpConfig,
    LoggingConfig,
    MediaConfig,
    OpsConfig,
    OutboxConfig,
    ReconnectConfig,
    SlackConfig,
    TicketsConfig,
    WhatsappConfig,
)
from bridge.config.secret_sources import SecretValue, require_secret
from bridge.config.urls import authority_problem, is_postgres, resolve_database_url


def read_config(root: MappingReader, path: Path) -> Config:
    """The whole config from the top-level mapping; ``path`` is the file's."""
    database = read_database(root.child("database"))
    http = read_section(root.child("http"), HttpConfig)
    slack = read_slack(root.child("slack"))
    data_dir = read_key(root, "data_dir", section=Config)
    whatsapp = read_whatsapp(root.child("whatsapp"))
    tickets = read_section(root.child("tickets"), TicketsConfig)
    ops = read_section(root.child("ops"), OpsConfig)
    logging = read_section(root.child("logging"), LoggingConfig)
    media = read_section(root.child("media"), MediaConfig)
    outbox = read_outbox(root.child("outbox"))
    shutdown = read_key(root, "shutdown_timeout_seconds", section=Config)
    cluster = read_cluster(root.child("cluster"), database)
    companies = read_companies(root, slack=slack, default_engine=whatsapp.engine, media=media)
    matrix_user = _first_matrix_user(companies)
    homeserver = read_homeserver(root, matrix_user)
    appservice = read_appservice(root.child("appservice"), matrix_user)
    root.finish()
    return Config(
        path=path,
        database=database,
        http=http,
        homeserver=homeserver,
        appservice=appservice,
        slack=slack,
        data_dir=data_dir,
        whatsapp=whatsapp,
        tickets=tickets,
        ops=ops,
        companies=companies,
        logging=logging,
        media=media,
        outbox=outbox,
        shutdown_timeout_seconds=shutdown,
        cluster=cluster,
    )


def read_database(m: MappingReader) -> DatabaseConfig:
    fields = read_fields(m, DatabaseConfig)
    url, origin = fields.values["url"], fields.secrets["url"].origin
    resolved = resolve_database_url(url, m.ctx.base_dir)
    if resolved is None:
        m.error("url", f"expected sqlite:FILE or postgres://user@host/db{origin}")
        resolved = url
    elif is_postgres(resolved):
        # never quoted: it may hold a password
        problem = authority_problem(url, several_hosts=True, need_host=False, quote=False)
        if problem:
            m.error("url", f"{problem}; expected postgres://user@host:port/db{origin}")
    return DatabaseConfig(
        url=url,
        group_commit_ms=fields.values["group_commit_ms"],
        group_commit_max=fields.values["group_commit_max"],
        resolved_url=resolved,
    )


def read_cluster(m: MappingReader, database: DatabaseConfig) -> ClusterConfig:
    """Several instances share one database's work only on PostgreSQL (docs/cluster.md)."""
    config = read_section(m, ClusterConfig)
    if config.enabled and database.is_sqlite:
        m.error("enabled", "needs a PostgreSQL database.url (SQLite allows one instance)")
    return config


def read_slack(m: MappingReader) -> SlackConfig:
    fields = read_fields(m, SlackConfig)
    config = SlackConfig(**fields.values)
    if config.enabled:
        _check_slack_tokens(m, mode=config.mode, secrets=fields.secrets)
    if m.has("file_hosts") and not config.file_hosts:
        m.warn("file_hosts", "no file hosts: files attendants share will not reach WhatsApp")
    if config.api_url.endswith("/"):
        return config
    return replace(config, api_url=config.api_url + "/")


def _check_slack_tokens(m: MappingReader, *, mode: str, secrets: dict[str, SecretValue]) -> None:
    because = "because slack.enabled is true"
    require_secret(m, "bot_token", secret=secrets["bot_token"], because=because)
    _check_prefix(m, "bot_token", secret=secrets["bot_token"], prefix="xoxb-", what="bot token")
    if mode == "socket":
        app_token = secrets["app_token"]
        require_secret(
            m, "app_token", secret=app_token, because=because + " and slack.mode is socket"
        )
        _check_prefix(m, "app_token", secret=app_token, prefix="xapp-", what="app-level token")
    else:
        signing_secret = secrets["signing_secret"]
        require_secret(
            m, "signing_secret", secret=signing_secret, because=because + " and slack.mode is http"
        )


def _check_prefix(
    m: MappingReader, key: str, *, secret: SecretValue, prefix: str, what: str
) -> None:
    if secret.value and not secret.value.startswith(prefix):
        m.error(key, f"expected a Slack {what} starting with '{prefix}'{secret.origin}")


def read_whatsapp(m: MappingReader) -> WhatsappConfig:
    return read_section(
        m, WhatsappConfig, readers={"reconnect": lambda _: read_reconnect(m.child("reconnect"))}
    )


def read_reconnect(m: MappingReader) -> ReconnectConfig:
    config = read_section(m, ReconnectConfig)
    if config.initial_seconds > config.max_seconds:
        m.error("initial_seconds", f"must not exceed max_seconds ({config.max_seconds:g})")
    return config


def read_outbox(m: MappingReader) -> OutboxConfig:
    config = read_section(m, OutboxConfig)
    if config.base_delay_seconds > config.max_delay_seconds:
        maximum = config.max_delay_seconds
        m.error("base_delay_seconds", f"must not exceed max_delay_seconds ({maximum:g})")
    return config


def _first_matrix_user(companies: tuple[CompanyConfig, ...]) -> str | None:
    """The key path of the first session or ops channel using Matrix, if any."""
    for ci, company in enumerate(companies):
        if company.ops.matrix:
            return f"companies[{ci}].ops"
        for si, session in enumerate(company.sessions):
            if session.matrix:
                return f"companies[{ci}].sessions[{si}] ({session.name})"
    return None


def read_homeserver(root: MappingReader, matrix_user: str | None) -> HomeserverConfig:
    """Required, with both keys, once anything uses Matrix."""
    m = root.child("homeserver")
    if matrix_user and not root.has("homeserver"):
        root.error("homeserver", f"required because {matrix_user} uses Matrix (matrix: true)")
    required = bool(matrix_user and root.has("homeserver"))
    return read_section(m, HomeserverConfig, required=required)


def read_appservice(m: MappingReader, matrix_user: str | None) -> AppserviceConfig:
    """Both tokens are required once anything uses Matrix, and must differ."""
    fields = read_fields(m, AppserviceConfig)
    as_token, hs_token = fields.secrets["as_token"], fields.secrets["hs_token"]
    if matrix_user:
        because = f"because {matrix_user} uses Matrix"
        here = f"write it here (or '{GENERATE}')"
        require_secret(m, "as_token", secret=as_token, because=because, here=here)
        require_secret(m, "hs_token", secret=hs_token, because=because, here=here)
    if as_token.value and as_token.value == hs_token.value and as_token.value != GENERATE:
        m.error("hs_token", "must differ from as_token")
    return AppserviceConfig(**fields.values)
