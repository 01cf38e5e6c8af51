"""Where a secret comes from: the environment, a ``<key>_file``, or the key itself.

Strongest first (docs/configuration.md, "Secrets"): the environment variable
``ZAPBRIDGE_<SECTION>_<KEY>`` (a Cloud API session's section is
``CLOUD_<COMPANY>_<SESSION>``), then the file named by ``<key>_file`` (its content,
trimmed, the path relative to the config file), then ``<key>`` as written. A secret's
value is never shown in a problem; its origin is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.config.kinds import PATH, SECRET_TEXT
from bridge.config.mapping import MISSING, MappingReader
from bridge.config.problems import reason
from bridge.config.urls import resolve_path


@dataclass(frozen=True, slots=True)
class SecretValue:
    value: str = ""
    source: str = ""
    """Where it came from, for messages: an environment variable or a file name."""
    given: bool = False
    """Written somewhere, even if unusable (that problem is already reported)."""

    @property
    def origin(self) -> str:
        """`` (value from <source>)`` for a message, or nothing when written inline."""
        return f" (value from {self.source})" if self.source else ""


def env_name(section: str, key: str) -> str:
    """``ZAPBRIDGE_<SECTION>_<KEY>``, upper case, ``-`` written ``_``."""
    return f"ZAPBRIDGE_{section}_{key}".upper().replace("-", "_")


def read_secret(m: MappingReader, key: str, *, env_section: str | None = None) -> SecretValue:
    """A secret from the environment, ``<key>_file`` or ``<key>``, in that order;
    the variable is named by ``env_section`` (default: the mapping's path)."""
    variable = env_name(env_section or m.path, key)
    file_key = f"{key}_file"
    inline, file_raw = m.raw(key), m.raw(file_key)
    env_value = m.ctx.env.get(variable, "")
    if inline is not MISSING and file_raw is not MISSING:
        m.error(file_key, f"give either '{key}' or '{file_key}', not both")
        file_raw = MISSING
    if env_value:
        return SecretValue(env_value, variable, given=True)
    if file_raw is not MISSING:
        return _read_secret_file(m, file_key, file_raw)
    if inline is MISSING:
        return SecretValue()
    return SecretValue(m.convert(key, inline, kind=SECRET_TEXT, default=""), given=True)


def _read_secret_file(m: MappingReader, file_key: str, raw: Any) -> SecretValue:
    name = m.convert(file_key, raw, kind=PATH, default=None)
    if name is None:
        return SecretValue(given=True)
    path = resolve_path(name, m.ctx.base_dir)
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        m.error(file_key, f"cannot read secret file {path}: {reason(exc)}")
        return SecretValue(source=str(path), given=True)
    if not value:
        m.error(file_key, f"secret file {path} is empty")
    return SecretValue(value, str(path), given=True)


def require_secret(
    m: MappingReader,
    key: str,
    *,
    secret: SecretValue,
    because: str,
    here: str = "write it here",
    env_section: str | None = None,
) -> None:
    """Report ``key`` as required (naming its three places) unless it was given."""
    if not secret.given:
        m.error(
            key,
            f"required {because}; {here}, in '{key}_file' (a file holding it), "
            f"or in the environment variable {env_name(env_section or m.path, key)}",
        )
