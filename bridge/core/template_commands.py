"""``!template``: the approved WhatsApp templates of a Cloud API session, listed or
sent to a ticket's customer (the one message WhatsApp allows outside the customer's
24-hour window; see bridge/core/cloud_session.py and docs/commands.md)."""

from __future__ import annotations

from bridge.config.schema import CloudTemplate
from bridge.core import command_texts as texts
from bridge.core.cloud_session import is_cloud
from bridge.core.command_model import CommandReply, Invocation, Services, UsageError
from bridge.errors import InvalidInput


def _templates(services: Services, call: Invocation) -> tuple[CloudTemplate, ...]:
    """The session's approved templates; refused for a session not on the Cloud API."""
    config = services.config
    session = config.session_for_key(call.session_key)
    if session is None:
        raise InvalidInput(f"session {call.session_key} is no longer configured")
    if not is_cloud(config, session):
        engine = config.engine_of(session)
        raise InvalidInput(texts.templates_not_cloud(call.session_key, engine=engine))
    return session.cloud.templates if session.cloud is not None else ()


async def run_template(services: Services, call: Invocation) -> CommandReply:
    templates = _templates(services, call)
    if not call.args:
        listed = [(t.name, t.language, t.params) for t in templates]
        return CommandReply(texts.template_list(call.session_key, listed))
    name, params = call.args[0], call.args[1:]
    template = next((t for t in templates if t.name == name), None)
    if template is None:
        raise UsageError(texts.unknown_template(name, known=[t.name for t in templates]))
    if len(params) != template.params:
        raise UsageError(texts.template_params(name, wanted=template.params, got=len(params)))
    ctx = call.ctx
    ticket = await services.tickets.send_template(
        call.ticket_id, template=template, params=params, by=ctx.user_id, by_name=ctx.display_name
    )
    return CommandReply(texts.template_sent(name, ticket_id=ticket.id))
