"""The companies and sessions tables follow the config at every start."""

from __future__ import annotations

from bridge.config import Config
from bridge.db import Repositories
from bridge.whatsapp.engine import session_key


async def sync_config(config: Config, repos: Repositories) -> dict[str, int]:
    """Make the companies and sessions tables match ``config``; map session keys to ids."""
    ids: dict[str, int] = {}
    async with repos.db.transaction():  # one commit, not one per session (10,000: seconds)
        for company in config.companies:
            await repos.companies.upsert(company.id, company.name)
            for session in company.sessions:
                row = await repos.sessions.upsert(
                    company.id, session.name, engine=config.whatsapp.engine
                )
                ids[session_key(company.id, session.name)] = row.id
    return ids
