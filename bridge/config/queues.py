"""A session's ``queues`` and ``menu`` (docs/tickets.md#queues; every key in
docs/configuration.md).

Queue names and options are unique within the session; a queue's ``attendants``
must be admins or attendants of the company. ``menu`` is optional with queues: its
keys take their defaults, and an empty ``default_queue`` becomes the first queue
listed. ``menu`` without queues is warned and ignored; so is the session's
``greeting`` with queues (the menu is the first reply).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from bridge.config.fields import read_fields
from bridge.config.hours import read_business_hours
from bridge.config.mapping import MappingReader
from bridge.config.problems import Seen
from bridge.config.schema import MenuConfig, QueueConfig

RESERVED = ("pending", "open", "closed", "me")
"""Words ``!tickets`` and ``!transfer`` read otherwise."""


def read_queues(session: MappingReader, *, members: Collection[str]) -> tuple[QueueConfig, ...]:
    """The session's queues; ``members`` are the company's admins and attendants."""
    queues = []
    names, options = Seen(), Seen()
    for raw, path, line in session.items("queues"):
        m = MappingReader(session.ctx, raw, path=path, line=line, label=session.label)
        hours = {"business_hours": lambda _, m=m: read_business_hours(m)}
        values = read_fields(m, QueueConfig, readers=hours).values
        name, option = values["name"], values["option"]
        if name is None or option is None:
            continue  # reported
        queue = QueueConfig(**values)
        clash = name in RESERVED
        if clash:
            m.error(
                "name", f"'{name}' is a word of !tickets and !transfer; name the queue otherwise"
            )
        earlier = names.claim(name, f"{path} (line {m.line_of('name')})")
        if earlier:
            m.error("name", f"queue name '{name}' is already used by {earlier}")
            clash = True
        earlier = options.claim(str(option), f"{path} (line {m.line_of('option')})")
        if earlier:
            m.error("option", f"option {option} is already used by {earlier}")
            clash = True
        for user in queue.attendants:
            if user not in members:
                m.error(
                    "attendants",
                    f"{user} is not an admin or attendant of this company; add them there first",
                )
        if queue.out_of_hours and queue.business_hours is None:
            m.warn("out_of_hours", "never sent: this queue has no business_hours")
        if not clash:
            queues.append(queue)
    return tuple(queues)


def read_menu(session: MappingReader, *, queues: tuple[QueueConfig, ...]) -> MenuConfig | None:
    """The menu of a session with queues (defaults filled in); None without queues."""
    if not session.has("menu"):
        session.raw("menu")
        return MenuConfig(default_queue=queues[0].name) if queues else None
    m = session.child("menu")
    menu = MenuConfig(**read_fields(m, MenuConfig).values)
    if not queues:
        if not session.has("queues"):
            session.warn("menu", "ignored: this session has no queues")
        return None
    if not menu.default_queue:
        return replace(menu, default_queue=queues[0].name)
    if menu.default_queue not in {q.name for q in queues}:
        names = ", ".join(q.name for q in queues)
        m.error("default_queue", f"no queue named '{menu.default_queue}' here ({names})")
    return menu
