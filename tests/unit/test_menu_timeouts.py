"""The menu timer's pause (docs/tickets.md#queues): until the earliest deadline in the
database, never longer than the shortest menu timeout of the config (so a menu sent
while it sleeps is never late), never shorter than a second."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bridge.clock import FakeClock
from bridge.config import parse_config
from bridge.core.menu_timeouts import MenuTimeouts

CONFIG = """\
database: {url: "sqlite::memory:"}
whatsapp: {engine: sim}
slack: {enabled: true, bot_token: xoxb-1, app_token: xapp-1}
companies:
  - id: acme
    admins: ["@alice:localhost"]
    ops: {slack_channel: C0OPS}
    sessions:
      - name: sales
        slack_channel: C0SALES
%s
      - name: support
        slack_channel: C0SUPPORT
%s
"""


class Deadlines:
    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline

    async def next_deadline(self) -> float | None:
        return self.deadline


def timer(sales: str, support: str, deadline: float | None, clock: FakeClock) -> MenuTimeouts:
    config = parse_config(CONFIG % (sales, support), path=Path("/srv/config.yaml"))
    repos: Any = SimpleNamespace(ticket_queues=Deadlines(deadline))
    unused: Any = SimpleNamespace()  # the pause reads only the deadlines
    return MenuTimeouts(config, repos, queues=unused, outgoing=unused, clock=clock)


QUEUES = "        queues: [{name: a, option: 1}]\n        menu: {timeout_seconds: %d}"


@pytest.mark.parametrize(
    ("deadline_in", "pause"),
    [
        (None, 120.0),  # nothing choosing: the shortest timeout
        (30.0, 30.0),  # until the earliest deadline
        (500.0, 120.0),  # a menu sent meanwhile may be due sooner than that one
        (0.2, 1.0),  # at least a second
        (-50.0, 1.0),  # overdue (more than one batch): soon again
    ],
)
async def test_the_pause(deadline_in: float | None, pause: float) -> None:
    clock = FakeClock()
    deadline = None if deadline_in is None else clock.now() + deadline_in
    t = timer(QUEUES % 300, QUEUES % 120, deadline, clock)
    assert t.enabled
    assert await t.next_pause() == pause


def test_no_queues_no_timer() -> None:
    assert not timer("", "", None, FakeClock()).enabled
