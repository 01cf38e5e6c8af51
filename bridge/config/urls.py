"""URLs and file paths as a config writes them.

A URL's host and port are checked when the config is read, so a typo is a located
problem instead of a traceback at the first connection; a relative path is resolved
against the directory of the config file (docs/configuration.md).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bridge.config.problems import shown as shown_value


def resolve_path(name: str, base_dir: Path) -> Path:
    """``name`` (``~`` expanded) as an absolute path, relative ones under ``base_dir``."""
    path = Path(name).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else base_dir / path))


def is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://"))


def resolve_database_url(url: str, base_dir: Path) -> str | None:
    """A PostgreSQL URL as is, ``sqlite:`` with its file made absolute; None when
    ``url`` is neither."""
    if is_postgres(url):
        return url
    if not url.startswith("sqlite:"):
        return None
    file = url.removeprefix("sqlite:")
    if file.startswith("//"):  # sqlite:///abs/x.db, the URL spelling
        file = file[2:]
    if not file:
        return None
    if file == ":memory:":
        return url
    return f"sqlite:{resolve_path(file, base_dir)}"


def url_password(url: str) -> str | None:
    """The password of a PostgreSQL URL, for the log redactor."""
    if not is_postgres(url):
        return None
    try:
        return urlsplit(url).password
    except ValueError:
        return None


_NOT_IN_HOST = re.compile(r"[\s\x00-\x1f\x7f\[\]/?#@:,\\<>\"{}|^`]")


def authority_problem(
    url: str, *, several_hosts: bool, need_host: bool, quote: bool = True
) -> str | None:
    """What is wrong with the ``user@host:port`` part of ``url`` (comma-separated
    hosts when ``several_hosts``, as asyncpg reads them), or None. The user name and
    password are never quoted, and nothing of the URL unless ``quote`` (without an
    '@', a password reads as a port)."""
    rest = url.partition("://")[2]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    userinfo, _, hosts = authority.rpartition("@")
    if "[" in userinfo or "]" in userinfo:
        return "a '[' or ']' in the user name or password must be written %5B or %5D"
    shown = (lambda value: f" {shown_value(value)}") if quote else (lambda _: "")
    for spec in hosts.split(",") if several_hosts else [hosts]:
        problem = _host_port_problem(spec, need_host=need_host, shown=shown)
        if problem:
            return problem
    try:
        urlsplit(url)  # what the bridge reads it with later
    except ValueError as exc:
        return f"not a valid URL ({exc})" if quote else "not a valid URL"
    return None


def plain_http_problem(url: str) -> str | None:
    """Why ``url`` may not use plain ``http://``: only a loopback host (a test
    server on this machine) may; anything else would send tokens in clear."""
    if not url.startswith("http://"):
        return None
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a host name, not an address
    return "plain http is only for a server on this machine (localhost); use https"


def _host_port_problem(spec: str, *, need_host: bool, shown: Callable[[Any], str]) -> str | None:
    """What is wrong with one ``host``, ``host:port``, ``[ipv6]`` or ``[ipv6]:port``."""
    if spec.startswith("["):
        end = spec.find("]")
        if end < 0:
            return "the host has a '[' without its ']' (an IPv6 address is written like [::1])"
        address, after = spec[1:end], spec[end + 1 :]
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            return f"the host{shown(address)} in [...] is not an IPv6 address"
        if after and not after.startswith(":"):
            return f"unexpected text{shown(after)} after the IPv6 address in [...]"
        return _port_problem(after[1:], shown) if after else None
    host, colon, port = spec.partition(":")
    if ":" in port:
        return f"the host{shown(spec)} is not host:port (an IPv6 address is written like [::1])"
    if _NOT_IN_HOST.search(host):
        return f"the host{shown(host)} has characters a host name cannot have"
    if need_host and not host:
        return "the URL names no host"
    return _port_problem(port, shown) if colon else None


def _port_problem(port: str, shown: Callable[[Any], str]) -> str | None:
    if not port:
        return "the port after ':' is empty"
    if not re.fullmatch(r"[0-9]{1,5}", port):
        return f"the port{shown(port)} is not a number"
    if not 1 <= int(port) <= 65535:
        return f"the port{shown(port)} is out of range 1-65535"
    return None
