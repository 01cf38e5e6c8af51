"""``python -m bridge run -c CONFIG`` for benchmarks, with one knob the config lacks.

The Slack frontend paces each channel at Slack's real limit (about 1 message/s,
``bridge/slack/ratelimit.py`` ``ChannelPacer`` defaults) and the config has no key to
change it, so 5,000 messages into a few channels would take over an hour. Against
the local fake, this launcher builds the same ``Bridge`` with a ``ChannelPacer`` of
``--slack-rate`` calls/s per channel; everything else is ``bridge run``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from bridge.__main__ import _setup_logging
from bridge.app import Bridge, build_frontends
from bridge.clock import SystemClock
from bridge.config import load_config
from bridge.core.frontend import Frontend


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bridge_proc")
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--slack-rate", type=float, default=10_000.0)
    parser.add_argument("--slack-burst", type=int, default=1_000)
    args = parser.parse_args(argv)
    config = load_config(Path(args.config))
    _setup_logging(config)
    clock = SystemClock()
    frontends: list[Frontend] = build_frontends(config, clock=clock)
    if config.slack.enabled:
        from bridge.slack import SlackFrontend
        from bridge.slack.ratelimit import ChannelPacer

        pacer = ChannelPacer(clock=clock, rate=args.slack_rate, burst=args.slack_burst)
        frontends = [SlackFrontend(config.slack, clock=clock, pacer=pacer)]
    asyncio.run(Bridge(config, clock=clock, frontends=frontends).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
