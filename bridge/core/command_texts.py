"""Every user-facing text of the chat commands, in one module.

Replies use WhatsApp-style markup (``*bold*``); the frontends convert it. Nothing
here decides anything: :mod:`bridge.core.commands` chooses which text to send, this
module only words it, so a reworded reply never touches command logic.

A place is named for the frontend it is typed in: Matrix has rooms, Slack has
channels (``frontend`` is ``"matrix"`` or ``"slack"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# --- the commands' own help -------------------------------------------------------


@dataclass(frozen=True)
class CommandHelp:
    """How ``!help`` describes one command."""

    summary: str
    usage: str
    ops_usage: str | None = None  # the form typed in the ops room, when it differs

    def usage_in(self, *, ops: bool) -> str:
        return self.ops_usage if ops and self.ops_usage else self.usage


HELP = CommandHelp("list the commands you can use here", "!help [command]")
LOGIN = CommandHelp(
    "link a WhatsApp number (QR code, or a pairing code by phone) or reconnect it",
    "!login [phone +E164]",
    "!login <session> [phone +E164]",
)
LOGOUT = CommandHelp("unlink the WhatsApp number from the bridge", "!logout", "!logout <session>")
STATUS = CommandHelp(
    "connection status and phone of this session; in ops, of every session",
    "!status",
    "!status [session]",
)
SESSIONS = CommandHelp("every WhatsApp session of the company, one per line", "!sessions")
TICKETS = CommandHelp(
    "this session's tickets you work (default: pending and open), of one queue if named",
    "!tickets [pending|open|closed] [queue]",
)
ACCEPT = CommandHelp("take this ticket: it becomes open and assigned to you", "!accept")
CLOSE = CommandHelp("close this ticket (the customer gets the farewell)", "!close")
REOPEN = CommandHelp("reopen this closed ticket", "!reopen")
ASSIGN = CommandHelp(
    "give this ticket to an admin or attendant (a Matrix id, a Slack @mention, or me)",
    "!assign <user>",
)
TRANSFER = CommandHelp(
    "move this ticket to another attendant, to a queue of this session, or to another "
    "session of the company",
    "!transfer <user|queue|session>",
)
TEMPLATE = CommandHelp(
    "send an approved WhatsApp template (Cloud API sessions, also after the customer's "
    "24-hour window); alone, list them",
    "!template [name params…]",
)
NOTE = CommandHelp(
    "an internal note: shown to staff on every frontend, never sent to the customer "
    "(a message starting with the note prefix, // by default, is one too)",
    "!note <text>",
)
NOTE_AS_MESSAGE = (
    "A note is a message typed in the ticket's thread: !note <text>, or the text after "
    "the note prefix. It was not recorded."
)
STATS = CommandHelp(
    "ticket counts, first response times and message volume of the company, or of its "
    "tickets in one queue",
    "!stats [queue]",
)
QUICK_REPLY = CommandHelp(
    "send the customer a saved quick reply ({name}, {ticket}, {attendant} filled in)",
    "!r <shortcut>",
)
REPLIES = CommandHelp("the company's quick replies and their shortcuts", "!replies")
TRANSCRIPT = CommandHelp(
    "post this ticket's transcript (every message with time and author) as a file here",
    "!transcript",
)


def usage(line: str) -> str:
    return f"Usage: {line}"


# --- places and roles ---------------------------------------------------------------

_PLACES = {
    "matrix": {
        "control": "in a session's control room",
        "thread": "inside a ticket thread",
        "ops": "in the ops room",
    },
    "slack": {
        "control": "in a session's channel",
        "thread": "inside a ticket thread",
        "ops": "in the ops channel",
    },
}
_HERE = {
    "matrix": {
        "control": "this control room",
        "thread": "this ticket thread",
        "ops": "the ops room",
    },
    "slack": {"control": "this channel", "thread": "this ticket thread", "ops": "the ops channel"},
}
_ROLES = {"admin": "an admin", "attendant": "an attendant"}


def where(place: str, *, frontend: str) -> str:
    """``in a session's control room``, ``inside a ticket thread``, …"""
    return _PLACES.get(frontend, _PLACES["matrix"])[place]


def _where_any(places: Iterable[str], *, frontend: str) -> str:
    places = list(places)
    if set(places) >= {"control", "thread", "ops"}:
        return "anywhere"
    return " or ".join(where(p, frontend=frontend) for p in places)


# --- refusals ---------------------------------------------------------------------------


def not_a_member(company_name: str | None) -> str:
    who = f"{company_name}'s" if company_name else "this company's"
    return f"Sorry, only {who} admins and attendants can use commands here."


def admins_only(command: str, *, company_name: str) -> str:
    return f"Only admins of {company_name} can use !{command}."


def wrong_place(
    command: str, *, places: Iterable[str], frontend: str, ops_usage: str | None
) -> str:
    places = list(places)
    text = f"!{command} works {_where_any(places, frontend=frontend)}"
    if "ops" in places and ops_usage:
        text += f" (there, type {ops_usage})"
    return text + "."


def unknown_command(name: str, *, suggestions: Iterable[str]) -> str:
    close = [f"!{s}" for s in suggestions]
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    return f"Unknown command !{name}.{hint} Type !help for the list."


def command_failed(command: str, explanation: str) -> str:
    """A deliberate error (its ``explanation``) stopped the command."""
    return f"Could not run !{command}: {explanation}"


def command_crashed(command: str) -> str:
    return f"Something went wrong running !{command}; the error was logged."


# --- argument problems ------------------------------------------------------------------


def no_session(name: str, *, company_name: str, sessions: Iterable[str]) -> str:
    names = ", ".join(sessions)
    known = f" Sessions: {names}." if names else ""
    return f"No session named {name} in {company_name}.{known}"


def which_session(command_usage: str, *, sessions: Iterable[str]) -> str:
    names = ", ".join(sessions) or "none configured"
    return f"Which session? {usage(command_usage)} (sessions: {names})."


def other_session(command: str, *, session_key: str, frontend: str) -> str:
    return (
        f"Here !{command} applies to {session_key}; "
        f"name another session {where('ops', frontend=frontend)}."
    )


def bad_phone(value: str, *, command_usage: str) -> str:
    return (
        f"{value} is not a phone number in international format "
        f"(like +5511987654321). {usage(command_usage)}"
    )


def not_a_user(value: str, *, command_usage: str) -> str:
    return (
        f"{value} is not a user: write a Matrix id like @bob:example.org, "
        f"a Slack @mention, or me. {usage(command_usage)}"
    )


def no_user_or_session(value: str, *, company_name: str) -> str:
    return f"No session or user named {value} in {company_name}."


def not_staff(user: str, *, company_name: str) -> str:
    return f"{user} is not an admin or attendant of {company_name}."


# --- results ------------------------------------------------------------------------------


def login_started(session_key: str) -> str:
    return f"Starting login for {session_key}: the QR code will appear here."


def login_by_phone_started(session_key: str, phone: str) -> str:
    return (
        f"Starting login for {session_key} with {phone}: the pairing code will appear here. "
        "On the phone, open WhatsApp → Linked devices → Link with phone number, and type it."
    )


def reconnecting(session_key: str, *, status: str) -> str:
    return (
        f"Reconnecting {session_key} (it was {status}). "
        "If WhatsApp asks to link it again, the QR code will appear here."
    )


def logged_out(session_key: str) -> str:
    return f"{session_key} is logged out (LOGGED_OUT). Type !login to link it again."


# A Cloud API session (docs/cloud.md, "Connection and tokens").
_CLOUD_NO_QR = (
    "{key} is on the WhatsApp Business Cloud API: there is no QR code, the number is "
    "linked in Meta's WhatsApp Manager and the bridge uses the access token in "
    "sessions[].cloud."
)


def cloud_phone_login_refused(session_key: str) -> str:
    return _CLOUD_NO_QR.format(key=session_key) + " Type !login alone to check the token."


def cloud_login(session_key: str, *, status: str, phone: str | None) -> str:
    """What ``!login`` found when it checked the token again."""
    intro = _CLOUD_NO_QR.format(key=session_key)
    if status == "CONNECTED":
        as_phone = f" as {phone}" if phone else ""
        return f"{intro} Meta accepts the token: CONNECTED{as_phone}."
    if status == "LOGGED_OUT":
        return (
            f"{intro} Meta refuses the token (LOGGED_OUT): put a new token in the "
            "configuration (or its file or environment variable) and restart the bridge."
        )
    return f"{intro} Meta could not be asked now ({status}): the bridge tries again."


def cloud_logged_out(session_key: str) -> str:
    return (
        f"{session_key} is logged out (LOGGED_OUT): the bridge no longer uses its Cloud API "
        "number; the token stays valid at Meta until you revoke it there. "
        "Type !login to connect it again."
    )


def session_line(session_key: str, *, status: str, phone: str | None) -> str:
    """``acme/sales CONNECTED +5511900000001`` (contract)."""
    return f"{session_key} {status} {phone}" if phone else f"{session_key} {status}"


def with_owner(line: str, owner: str | None) -> str:
    """``acme/sales CONNECTED +5511900000001 on zap-2`` (several instances, docs/cluster.md)."""
    return f"{line} on {owner}" if owner else f"{line}, no instance runs it"


def account_facts(facts: Mapping[str, str]) -> str:
    """``Cloud API: quality rating GREEN, messaging limit TIER_1K``."""
    shown = ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in facts.items())
    return f"Cloud API: {shown}"


def account_facts_unavailable(explanation: str) -> str:
    return f"Cloud API: the account's quality and limits are unavailable ({explanation})"


def no_sessions(company_name: str) -> str:
    return f"{company_name} has no WhatsApp sessions configured."


def ticket_line(
    ticket_id: int,
    *,
    status: str,
    name: str,
    phone: str | None,
    is_group: bool,
    lid: str | None = None,
    queue: str | None = None,
) -> str:
    """``#12 pending Maria (+5511987654321)``; groups ``#13 open Family (group)``
    (contract); a customer whose phone WhatsApp hides ``#14 open Ana (LID 1234…)``;
    ``… · queue sales`` for a ticket in a queue."""
    shown_name = " ".join(name.split()) or "unknown"
    known_as = phone or (f"LID {lid}" if lid else "no number")
    where_from = "group" if is_group else known_as
    line = f"#{ticket_id} {status} {shown_name} ({where_from})"
    return f"{line} · queue {queue}" if queue else line


def no_tickets(statuses: Iterable[str], *, queue: str | None = None) -> str:
    where = f" in queue {queue}" if queue else ""
    return f"No {' or '.join(statuses)} tickets{where}."


def more_tickets(count: int) -> str:
    return f"… and {count} more."


def accepted(ticket_id: int, *, by: str, status: str) -> str:
    return f"{by} accepted ticket #{ticket_id}; it is {status} and assigned to them."


def closed(ticket_id: int, *, by: str, status: str) -> str:
    return f"Ticket #{ticket_id} {status} by {by}."


def reopened(ticket_id: int, *, by: str, status: str) -> str:
    return f"Ticket #{ticket_id} reopened by {by}; it is {status}."


def assigned(ticket_id: int, *, to: str, by: str) -> str:
    return f"Ticket #{ticket_id} assigned to {to} by {by}."


def no_queue(word: str, *, queues: Iterable[str]) -> str:
    names = ", ".join(queues) or "none"
    return f"No queue named {word!r} in this company (queues: {names}). Usage: !stats [queue]"


def transferred(ticket_id: int, *, to: str, by: str) -> str:
    return f"Ticket #{ticket_id} transferred to {to} by {by}."


def templates_not_cloud(session_key: str, *, engine: str) -> str:
    return f"templates are a Cloud API feature; {session_key} runs on {engine}"


def template_list(session_key: str, templates: Iterable[tuple[str, str, int]]) -> str:
    """``templates``: (name, language, parameter count) of each approved template."""
    lines = [
        f"{name} ({language}, {params} param{'' if params == 1 else 's'})"
        for name, language, params in templates
    ]
    if not lines:
        return f"{session_key} has no templates configured (sessions[].cloud.templates)."
    return "\n".join([f"*Templates of {session_key}* (!template <name> [params…]):", *lines])


def unknown_template(name: str, *, known: Iterable[str]) -> str:
    names = ", ".join(known) or "none configured"
    return f"No template named {name} (templates: {names}). Type !template for the list."


def template_params(name: str, *, wanted: int, got: int) -> str:
    slots = "".join(f" <{n + 1}>" for n in range(wanted))
    plural = "" if wanted == 1 else "s"
    return (
        f"Template {name} takes {wanted} parameter{plural} (one word each), not {got}. "
        f"{usage(f'!template {name}{slots}')}"
    )


def template_sent(name: str, *, ticket_id: int) -> str:
    return f"Template {name} is on its way to the customer of ticket #{ticket_id}."


def duration(seconds: float | None) -> str:
    """``45s``, ``2m 05s``, ``1h 07m``, ``2d 3h``; ``n/a`` when unknown."""
    if seconds is None:
        return "n/a"
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def stats(
    company_name: str,
    *,
    by_status: Mapping[str, int],
    created_today: int,
    median_first_response: float | None,
    mean_first_response: float | None,
    messages_in: int,
    messages_out: int,
    ratings: int = 0,
    average_rating: float | None = None,
    queue: str | None = None,
    active_by_queue: Mapping[str, int] | None = None,
) -> str:
    """The satisfaction line only once a customer has rated a ticket; the queues' line
    only when a ticket not closed is in a queue."""
    counts = ", ".join(f"{count} {status}" for status, count in by_status.items()) or "none"
    whose = f"*{company_name}* tickets in queue {queue}" if queue else f"*{company_name}* tickets"
    lines = [
        f"{whose}: {counts} · {created_today} created today",
        f"First response: median {duration(median_first_response)}, "
        f"mean {duration(mean_first_response)}",
        f"Messages: {messages_in} in, {messages_out} out",
    ]
    if ratings and average_rating is not None:
        plural = "rating" if ratings == 1 else "ratings"
        lines.append(f"Satisfaction: {average_rating:.1f}/5 average over {ratings} {plural}")
    queued = {name: n for name, n in (active_by_queue or {}).items() if name}
    if queued:
        unqueued = (active_by_queue or {}).get("", 0)
        parts = [f"{name} {n}" for name, n in sorted(queued.items())]
        parts += [f"no queue {unqueued}"] if unqueued else []
        lines.append(f"Not closed by queue: {', '.join(parts)}")
    return "\n".join(lines)


# --- help ------------------------------------------------------------------------------------


def help_here(
    *,
    place: str,
    frontend: str,
    role: str,
    company_name: str,
    here: Iterable[tuple[str, str]],
    elsewhere: Iterable[tuple[Iterable[str], Iterable[str]]],
) -> str:
    """``here``: (usage, summary) pairs; ``elsewhere``: (command names, places) groups."""
    title = _HERE.get(frontend, _HERE["matrix"])[place]
    lines = [f"*Commands in {title}* (you are {_ROLES[role]} of {company_name}):"]
    lines += [f"{line} — {summary}" for line, summary in here]
    other = [
        f"{', '.join(f'!{n}' for n in names)} {_where_any(places, frontend=frontend)}"
        for names, places in elsewhere
    ]
    if other:
        lines.append("Elsewhere: " + "; ".join(other) + ".")
    if frontend == "slack":
        lines.append("Outside threads you can also type /whatsapp <command>.")
    lines.append("Type !help <command> for details.")
    return "\n".join(lines)


def help_command(
    name: str, *, entry: CommandHelp, admins_only: bool, places: Iterable[str], frontend: str
) -> str:
    who = " (admins only)" if admins_only else ""
    lines = [f"*!{name}* — {entry.summary}{who}", usage(entry.usage)]
    places = list(places)
    if entry.ops_usage and "ops" in places:
        lines.append(f"{where('ops', frontend=frontend).capitalize()}: {entry.ops_usage}")
    lines.append(f"Works {_where_any(places, frontend=frontend)}.")
    return "\n".join(lines)


# --- quick replies (bridge/core/quick_replies.py) --------------------------------------


def no_quick_replies(company_name: str) -> str:
    return f"{company_name} has no quick replies (companies[].quick_replies in the config)."


def quick_reply_line(shortcut: str, *, text: str, file_name: str | None) -> str:
    attached = f" (+ {file_name})" if file_name else ""
    return f"*{shortcut}*: {text}{attached}"


def unknown_quick_reply(shortcut: str, *, suggestions: Iterable[str]) -> str:
    close = [f"!r {s}" for s in suggestions]
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    return f"No quick reply named {shortcut}.{hint} Type !replies for the list."


# --- transcripts (bridge/core/transcript.py) ---------------------------------------------


def transcript_coming(ticket_id: int, *, filename: str) -> str:
    return f"The transcript of ticket #{ticket_id} is on its way: {filename}."
