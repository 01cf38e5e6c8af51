"""This instance's name in leases, ``/health``, ``!sessions`` and metrics."""

from __future__ import annotations

import os
import re
import socket

from bridge.config.schema import INSTANCE_AUTO, ClusterConfig

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def instance_id(config: ClusterConfig, *, host: str | None = None, pid: int | None = None) -> str:
    """``cluster.instance_id``, or for ``auto`` the host name and the process id
    (two processes on one host differ by pid; a restarted process is a new instance)."""
    if config.instance_id != INSTANCE_AUTO:
        return config.instance_id
    name = _UNSAFE.sub("-", (host or socket.gethostname()).split(".")[0]).strip("-.") or "host"
    return f"{name[:48]}-{pid if pid is not None else os.getpid()}"
