"""The Slack frontend (slack-bolt ``AsyncApp``; Socket Mode or HTTP Events API).

- :mod:`bridge.slack.frontend`: :class:`SlackFrontend`, the core's ``Frontend``;
- :mod:`bridge.slack.events`: Slack events, slash commands, buttons → the core;
- :mod:`bridge.slack.convert`: neutral content ⇄ Slack messages (pure);
- :mod:`bridge.slack.ratelimit`: per-channel pacing, 429 handling, error mapping;
- :mod:`bridge.slack.http`: ``POST /slack/events`` for HTTP mode.
"""

from bridge.slack.frontend import SlackFrontend

__all__ = ["SlackFrontend"]
