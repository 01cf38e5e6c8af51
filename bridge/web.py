"""The bridge's HTTP server: ``/health``, ``/metrics`` and mounted extras
(``/sim`` with the sim engine, Slack HTTP events)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from bridge.errors import BridgeError
from bridge.http_input import SERVER_OPTIONS
from bridge.metrics import Metrics

log = logging.getLogger("bridge.web")

StatusSource = Callable[[], dict[str, str] | Awaitable[dict[str, str]]]
ClusterFacts = Callable[[], dict[str, object]]  # "instance" and "owned" (docs/cluster.md)
DeadLetterCount = Callable[[], Awaitable[int]]
ProblemSource = Callable[[], list[str]]  # what keeps the bridge degraded, one line each

# The default body limit of routes that read with ``request.read()``; routes open to
# the world read with ``bridge.http_input.read_body`` and their own, smaller limit.
CLIENT_MAX_SIZE = 1024 * 1024


class WebServer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        metrics: Metrics,
        statuses: StatusSource,
        dead_letters: DeadLetterCount,
        problems: ProblemSource | None = None,
        cluster: ClusterFacts | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._metrics = metrics
        self._statuses = statuses
        self._dead_letters = dead_letters
        self._problems = problems or (lambda: [])
        self._cluster = cluster
        self.app = web.Application(client_max_size=CLIENT_MAX_SIZE)
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get("/metrics", self._metrics_view)
        self._runner: web.AppRunner | None = None

    def add_routes(self, routes: Iterable[web.AbstractRouteDef]) -> None:
        """Mount more routes; only before :meth:`start`."""
        self.app.router.add_routes(routes)

    async def start(self) -> None:
        # A request head slower than 15 s is cut off; bodies are never decompressed.
        self._runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, **SERVER_OPTIONS
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise BridgeError(
                f"cannot listen on http://{self.host}:{self.port}: {exc.strerror or exc}"
            ) from exc
        if self.port == 0:  # a free port was asked for: learn which
            self.port = int(self._runner.addresses[0][1])
        log.info("HTTP server listening on http://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _health(self, _request: web.Request) -> web.Response:
        found = self._statuses()
        sessions = await found if inspect.isawaitable(found) else found
        dead = await self._dead_letters()
        problems = self._problems()
        healthy = dead == 0 and not problems and all(s == "CONNECTED" for s in sessions.values())
        body: dict[str, object] = {"status": "ok" if healthy else "degraded", "sessions": sessions}
        if self._cluster is not None:
            body.update(self._cluster())
        if dead:
            body["dead_letters"] = dead
        if problems:
            body["problems"] = problems
        return web.json_response(body)

    async def _metrics_view(self, _request: web.Request) -> web.Response:
        resp = web.Response(body=self._metrics.render())
        resp.headers["Content-Type"] = self._metrics.content_type
        return resp
