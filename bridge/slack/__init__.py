"""The Slack frontend (slack-bolt ``AsyncApp``; Socket Mode or HTTP Events API).

- :mod:`bridge.slack.frontend`: :class:`SlackFrontend`, the core's ``Frontend``;
- :mod:`bridge.slack.events`: Slack events, slash commands, buttons → the core;
- :mod:`bridge.slack.convert`: neutral content ⇄ Slack messages (pure);
- :mod:`bridge.slack.ratelimit`: per-channel pacing, 429 handling, error mapping;
- :mod:`bridge.slack.http`: ``POST /slack/events`` for HTTP mode (with
  :mod:`bridge.slack.signature`), :mod:`bridge.slack.socket` for Socket Mode;
- :mod:`bridge.slack.payload`: payloads read by type; :mod:`bridge.slack.failures`:
  what a request that failed is answered;
- :mod:`bridge.slack.files`: downloads of shared files (token only to file hosts).
"""

from bridge.slack.frontend import SlackFrontend

__all__ = ["SlackFrontend"]
