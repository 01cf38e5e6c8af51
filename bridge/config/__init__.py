"""The bridge configuration: YAML in, typed and validated dataclasses out.

Reading a config never stops at the first mistake: every problem is collected with
its file, line and key path (``config.yaml:14 companies[0].sessions[1].slack_channel:
expected a Slack channel id like C0123ABC``) so one ``check-config`` run shows them
all. docs/configuration.md describes every key and how the file is read.

The package, by concern: ``schema`` (the dataclasses, with each key's kind and
default), ``kinds`` (converters), ``mapping`` and ``problems`` (a YAML mapping read
with its lines; the findings), ``fields`` (a section read by its dataclass),
``secret_sources`` (the environment and ``*_file`` secrets), ``sections``,
``companies`` and ``cloud`` (each section and the checks across keys), ``urls`` (URL and path
checks), ``load`` (the entry points).

Public surface: :func:`load_config`, :func:`check_config`, :func:`parse_config`,
:class:`Config` (and its section classes), :class:`ConfigReport`, :class:`Problem`.
"""

from bridge.config.load import check_config, load_config, parse_config
from bridge.config.problems import ConfigReport, Problem
from bridge.config.schema import (
    GENERATE,
    AppserviceConfig,
    BusinessHours,
    CloudConfig,
    CloudTemplate,
    CompanyConfig,
    CompanyOpsConfig,
    Config,
    DatabaseConfig,
    HomeserverConfig,
    HttpConfig,
    LoggingConfig,
    MediaConfig,
    MenuConfig,
    OpsConfig,
    OutboxConfig,
    QueueConfig,
    QuickReply,
    ReconnectConfig,
    SessionConfig,
    SimConfig,
    SlackConfig,
    TicketsConfig,
    WhatsappConfig,
)

__all__ = [
    "GENERATE",
    "AppserviceConfig",
    "BusinessHours",
    "CloudConfig",
    "CloudTemplate",
    "CompanyConfig",
    "CompanyOpsConfig",
    "Config",
    "ConfigReport",
    "DatabaseConfig",
    "HomeserverConfig",
    "HttpConfig",
    "LoggingConfig",
    "MediaConfig",
    "MenuConfig",
    "OpsConfig",
    "OutboxConfig",
    "Problem",
    "QueueConfig",
    "QuickReply",
    "ReconnectConfig",
    "SessionConfig",
    "SimConfig",
    "SlackConfig",
    "TicketsConfig",
    "WhatsappConfig",
    "check_config",
    "load_config",
    "parse_config",
]
