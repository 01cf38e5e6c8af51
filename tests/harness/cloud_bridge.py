"""A whole bridge whose ``acme/sales`` is a Cloud API session (tests/harness/cloud.py),
on a sim engine that also sends templates, reports account facts and can refuse
free-form sends as the Cloud API does outside the customer's window."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bridge.app import Bridge
from bridge.db.database import Database
from bridge.errors import WindowClosed
from bridge.model import Content, Quote
from bridge.whatsapp.engine import Engine
from bridge.whatsapp.sim import SimEngine
from tests.fakes.frontend import FakeFrontend
from tests.harness.cloud import with_cloud
from tests.harness.core import CoreHarness

CLOUD_SESSION = "acme/sales"


class TemplateSim(SimEngine):
    """The sim, plus what only the Cloud API engine does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.templates: list[dict[str, Any]] = []
        self.facts: dict[str, dict[str, str]] = {}
        self.window_closed: set[str] = set()  # sessions whose free-form sends Meta refuses
        self._template_ids = itertools.count(1)

    async def send(
        self,
        key: str,
        to: str,
        content: Content,
        *,
        quote: Quote | None = None,
        message_id: str | None = None,
    ) -> str:
        if key in self.window_closed:
            raise WindowClosed("(#131047) Re-engagement message")
        return await super().send(key, to, content, quote=quote, message_id=message_id)

    async def send_template(
        self,
        key: str,
        to: str,
        *,
        name: str,
        language: str,
        params: Sequence[str],
        message_id: str | None = None,
    ) -> str:
        wa_id = f"wamid.T{next(self._template_ids)}"
        self.templates.append(
            {"session": key, "to": to, "name": name, "language": language,
             "params": tuple(params), "id": wa_id}
        )  # fmt: skip
        return wa_id

    async def account_facts(self, key: str) -> dict[str, str]:
        return dict(self.facts.get(key, {}))


class _CloudBridge(Bridge):
    def _build_engine(self) -> Engine:
        wa = self.config.whatsapp
        return TemplateSim(
            self.sessions.handle_event,
            data_dir=self.config.data_path,
            clock=self.clock,
            qr_first_seconds=wa.sim.qr_first_seconds,
            qr_next_seconds=wa.sim.qr_next_seconds,
            auto_pair=wa.sim.auto_pair,
        )


class CloudHarness(CoreHarness):
    def __init__(self, tmp_path: Path, db: Database, *, frontends: list[FakeFrontend]) -> None:
        super().__init__(tmp_path, db, frontends=frontends)
        self.config = with_cloud(self.config, CLOUD_SESSION)
        self.bridge = self._new_bridge()

    def _new_bridge(self) -> Bridge:
        return _CloudBridge(
            self.config,
            clock=self.clock,
            frontends=list(self.frontends.values()),
            database=self.db,
            rng=random.Random(7),
        )

    @property
    def cloud(self) -> TemplateSim:
        engine = self.bridge.engine
        assert isinstance(engine, TemplateSim)
        return engine
