"""The companies and their sessions, with the checks across them: company ids and
session names unique, a Slack channel used once and only with Slack enabled, a
Cloud API number used by one session (cloud.py), and the warnings for a company or
a session nobody could work with."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from bridge.config.cloud import SessionEngine, env_section, read_cloud
from bridge.config.fields import read_fields
from bridge.config.hours import read_business_hours
from bridge.config.mapping import MISSING, MappingReader
from bridge.config.problems import Seen
from bridge.config.queues import read_menu, read_queues
from bridge.config.quick_replies import read_quick_replies
from bridge.config.schema import (
    CompanyConfig,
    CompanyOpsConfig,
    MediaConfig,
    SessionConfig,
    SlackConfig,
)


@dataclass(slots=True)
class _SlackChannels:
    """The Slack channels named so far, each by one session or ops channel only."""

    slack_enabled: bool
    seen: Seen = field(default_factory=Seen)

    def check(self, m: MappingReader, channel: str | None) -> str | None:
        """``channel`` as read into ``m``, reported if Slack is off or it is taken."""
        if channel is None:
            return None
        if not self.slack_enabled:
            m.error(
                "slack_channel",
                "Slack is not enabled (slack.enabled: false); enable it or remove this",
            )
        earlier = self.seen.claim(channel, m.path)
        if earlier:
            m.error("slack_channel", f"Slack channel {channel} is already used by {earlier}")
        return channel


@dataclass(slots=True)
class _AcrossSessions:
    """What the sessions of every company share while they are read."""

    channels: _SlackChannels
    default_engine: str
    """``whatsapp.engine``, for a session without its own ``engine``."""
    media: MediaConfig
    """``media``, which bounds the quick replies' files."""
    cloud_numbers: Seen = field(default_factory=Seen)

    def engine(self, chosen: str | None) -> SessionEngine:
        if chosen is None:
            return SessionEngine(self.default_engine, "whatsapp.engine")
        return SessionEngine(chosen, "engine")


def read_companies(
    root: MappingReader, *, slack: SlackConfig, default_engine: str, media: MediaConfig
) -> tuple[CompanyConfig, ...]:
    companies = []
    ids = Seen()
    shared = _AcrossSessions(_SlackChannels(slack.enabled), default_engine, media)
    for raw, path, line in root.items("companies"):
        m = MappingReader(root.ctx, raw, path=path, line=line)
        company = _read_company(m, shared)
        earlier = ids.claim(company.id, f"{path} (line {m.line_of('id')})")
        if company.id and earlier:
            m.error("id", f"duplicate company id '{company.id}', already used by {earlier}")
        companies.append(company)
    raw = root.raw("companies")
    if not companies and not root.broken and (raw is MISSING or isinstance(raw, list)):
        root.error("companies", "required; expected a list of at least one company")
    return tuple(companies)


def _read_company(m: MappingReader, shared: _AcrossSessions) -> CompanyConfig:
    values = read_fields(
        m,
        CompanyConfig,
        readers={
            "ops": lambda _: _read_company_ops(m.child("ops"), shared.channels),
            "sessions": lambda read: _read_sessions(
                m,
                company_id=read["id"],
                members=(*read["admins"], *read["attendants"]),
                shared=shared,
            ),
            "quick_replies": lambda _: read_quick_replies(m, media=shared.media),
        },
        then={"id": lambda company_id: company_id or ""},
    ).values
    company = CompanyConfig(**values)
    if not company.admins:
        m.warn("admins", "no admins: nobody can log this company's sessions in (!login)")
    if not (company.ops.matrix or company.ops.slack_channel):
        m.warn("ops", "no ops channel (matrix: true or slack_channel): alerts only reach the log")
    if not company.sessions:
        m.warn("sessions", "no sessions: this company has no WhatsApp number")
    return company


def _read_company_ops(m: MappingReader, channels: _SlackChannels) -> CompanyOpsConfig:
    check = partial(channels.check, m)
    return CompanyOpsConfig(
        **read_fields(m, CompanyOpsConfig, then={"slack_channel": check}).values
    )


def _read_sessions(
    m: MappingReader, *, company_id: str, members: tuple[str, ...], shared: _AcrossSessions
) -> tuple[SessionConfig, ...]:
    sessions = []
    names = Seen()
    for raw, path, line in m.items("sessions"):
        s = MappingReader(m.ctx, raw, path=path, line=line)
        session = _read_session(s, company_id=company_id, members=members, shared=shared)
        earlier = names.claim(session.name, f"{path} (line {s.line_of('name')})")
        if session.name and earlier:
            s.error(
                "name", f"duplicate session name '{session.name}' in this company, see {earlier}"
            )
        sessions.append(session)
    return tuple(sessions)


def _read_session(
    m: MappingReader, *, company_id: str, members: tuple[str, ...], shared: _AcrossSessions
) -> SessionConfig:
    def named(name: str | None) -> str:
        m.label = name or None  # every later problem of this session names it
        return name or ""

    values = read_fields(
        m,
        SessionConfig,
        readers={
            "company_id": lambda _: company_id,
            "business_hours": lambda _: read_business_hours(m),
            "cloud": lambda read: read_cloud(
                m,
                engine=shared.engine(read["engine"]),
                env=env_section(company_id, read["name"]),
                numbers=shared.cloud_numbers,
            ),
            "queues": lambda _: read_queues(m, members=members),
            "menu": lambda read: read_menu(m, queues=read["queues"]),
        },
        then={
            "name": named,
            "slack_channel": partial(shared.channels.check, m),
        },
    ).values
    session = SessionConfig(**values)
    if session.groups and shared.engine(session.engine).is_cloud:
        m.warn("groups", "ignored: the Cloud API does not bridge group chats (docs/cloud.md)")
    if not session.matrix and session.slack_channel is None and not m.has("slack_channel"):
        m.warn_here(
            "no frontend (neither matrix: true nor slack_channel): nobody will see its tickets"
        )
    if session.queues and session.greeting:
        m.warn("greeting", "not sent: with queues the menu is the first reply (docs/tickets.md)")
    if session.out_of_hours and not m.has("business_hours"):
        m.warn("out_of_hours", "never sent: this session has no business_hours (always open)")
    return session
