"""A session's ``cloud`` section: its number on the official WhatsApp Business Cloud
API (docs/cloud.md; every key in docs/configuration.md).

The section is read whenever it is written, so a mistyped key is reported; it is
used only by a session whose engine is ``cloud``, which requires it with its number
and three secrets. A number serves one session, and a template name is listed once
per session (``!template <name>`` picks it by name).
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.config.fields import read_fields
from bridge.config.kinds import PHONE_NUMBER_ID
from bridge.config.mapping import REQUIRED, MappingReader
from bridge.config.problems import Seen
from bridge.config.schema import CloudConfig, CloudTemplate
from bridge.config.secret_sources import require_secret

SECRET_KEYS = ("access_token", "app_secret", "verify_token")


@dataclass(frozen=True, slots=True)
class SessionEngine:
    """Which engine serves the session being read, and why (for messages)."""

    name: str
    chosen_by: str
    """The key that chose it: ``engine`` or ``whatsapp.engine``."""

    @property
    def is_cloud(self) -> bool:
        return self.name == "cloud"


def env_section(company_id: str, session: str) -> str:
    """The section part of a Cloud API secret's environment variable:
    ``ZAPBRIDGE_CLOUD_<COMPANY>_<SESSION>_<KEY>`` (secret_sources.py)."""
    return f"CLOUD_{company_id}_{session}"


def read_cloud(
    session: MappingReader, *, engine: SessionEngine, env: str, numbers: Seen
) -> CloudConfig | None:
    """The ``cloud`` section of ``session`` when its engine is ``cloud``; ``env``
    names the secrets' variables, ``numbers`` holds the phone number ids already
    used."""
    because = f"because {engine.chosen_by} is cloud"
    if not session.has("cloud"):
        session.raw("cloud")  # known, so not reported as unknown
        if engine.is_cloud:
            session.error(
                "cloud",
                f"required {because}: the number's phone_number_id, access_token, "
                "app_secret and verify_token (docs/cloud.md)",
            )
        return None
    m = session.child("cloud")
    # an ignored section is checked for what it holds, not for what it lacks
    number_default = REQUIRED if engine.is_cloud else None
    fields = read_fields(
        m,
        CloudConfig,
        readers={
            "phone_number_id": lambda _: m.get(
                "phone_number_id", PHONE_NUMBER_ID, default=number_default
            ),
            "templates": lambda _: _read_templates(m),
        },
        env_section=env,
    )
    if not engine.is_cloud:
        session.warn(
            "cloud",
            f"ignored: this session's engine is {engine.name} (from {engine.chosen_by}), not cloud",
        )
        return None
    for key in SECRET_KEYS:
        require_secret(m, key, secret=fields.secrets[key], because=because, env_section=env)
    number = fields.values["phone_number_id"]
    if number is not None:
        earlier = numbers.claim(number, f"{m.path} (line {m.line_of('phone_number_id')})")
        if earlier:
            m.error("phone_number_id", f"phone number id {number} is already used by {earlier}")
    if number is None or not all(fields.secrets[key].value for key in SECRET_KEYS):
        return None
    return CloudConfig(**fields.values)


def _read_templates(cloud: MappingReader) -> tuple[CloudTemplate, ...]:
    templates = []
    names = Seen()
    for raw, path, line in cloud.items("templates"):
        m = MappingReader(cloud.ctx, raw, path=path, line=line, label=cloud.label)
        values = read_fields(m, CloudTemplate).values
        name = values["name"]
        if name is None:
            continue  # reported
        earlier = names.claim(name, f"{path} (line {m.line_of('name')})")
        if earlier:
            m.error("name", f"template '{name}' is already listed by {earlier}")
            continue
        templates.append(CloudTemplate(**values))
    return tuple(templates)
