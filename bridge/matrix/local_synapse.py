"""A throwaway local Synapse: for the Matrix tests and for ``python -m bridge demo``.

:class:`LocalSynapse` writes a ``homeserver.yaml`` into a directory (SQLite, a
port on 127.0.0.1, ``server_name`` ``localhost``, the bridge's appservice
registration, relaxed rate limits, no federation, no key fetching), runs
``python -m synapse.app.homeserver`` as a subprocess, waits until
``/_matrix/client/versions`` answers, registers users through the shared-secret
admin API, and stops the process cleanly.

    synapse = LocalSynapse(tmp_dir, registration=build_registration(config))
    await synapse.start()
    alice, token = await synapse.register_user("alice", "secret", admin=True)
    ...
    await synapse.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import hmac
import json
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from bridge.errors import BridgeError
from bridge.files import create_private, private_dir, write_private

__all__ = ["LocalSynapse", "SynapseError", "free_port"]

log = logging.getLogger("bridge.matrix.synapse")

SERVER_NAME = "localhost"
_RELAXED = {"per_second": 10000, "burst_count": 100000}
_RATE_LIMITS = (
    "rc_message",
    "rc_registration",
    "rc_admin_redaction",
    "rc_joins_per_room",
    "rc_media_create",
    "rc_room_creation",
    "rc_presence",
    "rc_delayed_event_mgmt",
)


class SynapseError(BridgeError):
    """The local Synapse could not be started or used."""


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child die when the process starting it dies,
    however it dies (SIGKILL included): Linux's ``PR_SET_PDEATHSIG``. None elsewhere.
    The signal comes when the starting *thread* ends: start children from the
    thread that runs the event loop (asyncio does)."""
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()

    def preexec() -> None:  # runs in the child, between fork and exec
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def homeserver_config(
    directory: Path,
    *,
    port: int,
    registration_file: Path,
    shared_secret: str,
    max_upload_mb: int = 100,
) -> dict[str, Any]:
    """The ``homeserver.yaml`` content for a fast, private, single-process Synapse."""
    config: dict[str, Any] = {
        "server_name": SERVER_NAME,
        "public_baseurl": f"http://127.0.0.1:{port}/",
        "pid_file": str(directory / "homeserver.pid"),
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {
            "name": "sqlite3",
            "args": {"database": str(directory / "homeserver.db")},
        },
        "log_config": str(directory / "log.yaml"),
        "media_store_path": str(directory / "media_store"),
        "signing_key_path": str(directory / "signing.key"),
        "registration_shared_secret": shared_secret,
        "enable_registration": False,
        "report_stats": False,
        "macaroon_secret_key": secrets.token_hex(16),
        "form_secret": secrets.token_hex(16),
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_domain_whitelist": [],
        "allow_public_rooms_over_federation": False,
        "enable_metrics": False,
        "url_preview_enabled": False,
        "presence": {"enabled": False},
        "enable_authenticated_media": True,
        "max_upload_size": f"{max_upload_mb}M",
        "app_service_config_files": [str(registration_file)],
        "track_appservice_user_ips": False,
        "bcrypt_rounds": 4,  # test passwords: fast hashing
        "user_directory": {"enabled": False},
        "stats": {"enabled": False},
        # answer every /sync afresh: a local server has no load to save, and clients
        # polling /sync (tests, the demo) must see new receipts and invites at once
        "caches": {"sync_response_cache_duration": 0},
    }
    for key in _RATE_LIMITS:
        config[key] = dict(_RELAXED)
    config["rc_joins"] = {"local": dict(_RELAXED), "remote": dict(_RELAXED)}
    config["rc_invites"] = {
        "per_room": dict(_RELAXED),
        "per_user": dict(_RELAXED),
        "per_issuer": dict(_RELAXED),
    }
    config["rc_login"] = {
        "address": dict(_RELAXED),
        "account": dict(_RELAXED),
        "failed_attempts": dict(_RELAXED),
    }
    return config


_LOG_CONFIG = """\
version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: {path}
root:
  level: WARNING
  handlers: [file]
disable_existing_loggers: false
"""


class LocalSynapse:
    """One Synapse process serving ``directory`` (created if missing)."""

    def __init__(
        self,
        directory: Path | str,
        *,
        registration: dict[str, Any],
        port: int | None = None,
        max_upload_mb: int = 100,
        python: str = sys.executable,
    ) -> None:
        self.directory = Path(directory)
        self.port = port or free_port()
        self.registration = registration
        self.max_upload_mb = max_upload_mb
        self.shared_secret = secrets.token_hex(16)
        self._python = python
        self._process: asyncio.subprocess.Process | None = None
        self.startup_seconds: float | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def domain(self) -> str:
        return SERVER_NAME

    @property
    def config_path(self) -> Path:
        return self.directory / "homeserver.yaml"

    @property
    def log_path(self) -> Path:
        return self.directory / "homeserver.log"

    def write_config(self) -> Path:
        """Write ``homeserver.yaml``, the registration, the log config and a signing key."""
        private_dir(self.directory)  # tokens, a shared secret and a signing key live here
        registration_file = self.directory / "registration.yaml"
        write_private(registration_file, json.dumps(self.registration))
        (self.directory / "log.yaml").write_text(
            _LOG_CONFIG.format(path=json.dumps(str(self.log_path))), encoding="utf-8"
        )
        self._write_signing_key()
        config = homeserver_config(
            self.directory,
            port=self.port,
            registration_file=registration_file,
            shared_secret=self.shared_secret,
            max_upload_mb=self.max_upload_mb,
        )
        # JSON is valid YAML, and needs no YAML writer here.
        write_private(self.config_path, json.dumps(config, indent=2))
        return self.config_path

    def _write_signing_key(self) -> None:
        path = self.directory / "signing.key"
        if path.exists():
            return
        from signedjson.key import generate_signing_key, write_signing_keys

        create_private(path)
        with path.open("w", encoding="utf-8") as file:
            write_signing_keys(file, [generate_signing_key("a_zb")])

    async def start(self, *, ready_within: float = 60.0) -> None:
        """Start Synapse and wait until its client API answers."""
        self.write_config()
        began = time.monotonic()
        env = {**os.environ, "SYNAPSE_CACHE_FACTOR": "0.5"}
        with (self.directory / "stdout.log").open("ab") as out:
            self._process = await asyncio.create_subprocess_exec(
                self._python,
                "-m",
                "synapse.app.homeserver",
                "-c",
                str(self.config_path),
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
                preexec_fn=die_with_parent(),  # and it never outlives us
            )
        try:
            await self._wait_ready(ready_within)
        except BaseException:
            await self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        log.info("Synapse ready on %s in %.1f s", self.address, self.startup_seconds)

    async def _wait_ready(self, limit: float) -> None:
        deadline = time.monotonic() + limit
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.returncode is not None:
                    raise SynapseError(
                        f"Synapse exited with {self._process.returncode}; see {self.log_path}"
                        f" and {self.directory / 'stdout.log'}"
                    )
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(f"{self.address}/_matrix/client/versions") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise SynapseError(f"Synapse did not answer within {limit:.0f} s; see {self.log_path}")

    async def register_user(
        self, localpart: str, password: str, *, admin: bool = False
    ) -> tuple[str, str]:
        """Register a user through the shared-secret admin API → (user id, access token)."""
        url = f"{self.address}/_synapse/admin/v1/register"
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                nonce = (await resp.json())["nonce"]
            fields = (nonce, localpart, password, "admin" if admin else "notadmin")
            message = "\x00".join(fields).encode()
            mac = hmac.new(self.shared_secret.encode(), message, hashlib.sha1).hexdigest()
            body = {
                "nonce": nonce,
                "username": localpart,
                "password": password,
                "admin": admin,
                "mac": mac,
            }
            async with http.post(url, json=body) as resp:
                data = await resp.json()
                if resp.status != 200:
                    raise SynapseError(f"cannot register {localpart}: {data.get('error', data)}")
        return data["user_id"], data["access_token"]

    async def stop(self, *, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
