"""WhatsApp JIDs ⇄ bridge addresses.

A JID names a WhatsApp endpoint: ``5511987654321@s.whatsapp.net`` (a phone),
``123456789@lid`` (a LID, WhatsApp's phone-less user id), ``1203…@g.us`` (a
group). The bridge speaks addresses instead (:attr:`bridge.model.Party.address`):
E.164 phones, LIDs as ``<lid>@lid`` and group JIDs as they are.

Phones are normalised with :func:`bridge.phone.normalize_phone`, so the two
spellings WhatsApp uses for Brazilian mobile numbers (with and without the ninth
digit) become one E.164 string. Going back, which spelling WhatsApp knows a number
by is a question for the engine (``is_on_whatsapp``): :func:`phone_jid` takes the
digits it is given.
"""

from __future__ import annotations

from neonize.proto.Neonize_pb2 import JID

from bridge.errors import InvalidInput
from bridge.model import Party
from bridge.phone import digits_of, normalize_phone

USER_SERVER = "s.whatsapp.net"
LID_SERVER = "lid"
GROUP_SERVER = "g.us"
HOSTED_SERVER = "hosted"
HOSTED_LID_SERVER = "hosted.lid"

_PHONE_SERVERS = frozenset({USER_SERVER, HOSTED_SERVER, "c.us"})
_LID_SERVERS = frozenset({LID_SERVER, HOSTED_LID_SERVER})


def make_jid(user: str, server: str, *, device: int = 0) -> JID:
    return JID(User=user, Server=server, Device=device, RawAgent=0, Integrator=0, IsEmpty=False)


def is_empty(jid: JID) -> bool:
    return jid.IsEmpty or not (jid.User or jid.Server)


def jid_to_str(jid: JID) -> str:
    """``user[.agent][:device]@server``, the way whatsmeow prints a JID."""
    if jid.RawAgent > 0:
        return f"{jid.User}.{jid.RawAgent}:{jid.Device}@{jid.Server}"
    if jid.Device > 0:
        return f"{jid.User}:{jid.Device}@{jid.Server}"
    if jid.User:
        return f"{jid.User}@{jid.Server}"
    return jid.Server


def parse_jid(text: str) -> JID:
    """The JID in ``text`` (``user[.agent][:device]@server``).

    Raises :class:`InvalidInput` when ``text`` has no server part.
    """
    user, sep, server = text.strip().rpartition("@")
    if not sep or not server:
        raise InvalidInput(f"not a WhatsApp JID: {text!r}")
    agent = device = 0
    if ":" in user:
        user, _, dev = user.partition(":")
        device = _small_int(dev, text)
    if "." in user and server in _PHONE_SERVERS | _LID_SERVERS:
        user, _, raw = user.partition(".")
        agent = _small_int(raw, text)
    return JID(User=user, Server=server, Device=device, RawAgent=agent, Integrator=0, IsEmpty=False)


def _small_int(value: str, text: str) -> int:
    if not value.isdigit():
        raise InvalidInput(f"not a WhatsApp JID: {text!r}")
    return int(value)


def non_ad(jid: JID) -> JID:
    """The JID without its device part (the user, not one of their devices)."""
    return make_jid(jid.User, jid.Server)


def is_group(jid: JID) -> bool:
    return jid.Server == GROUP_SERVER


def is_lid(jid: JID) -> bool:
    return jid.Server in _LID_SERVERS


def is_phone(jid: JID) -> bool:
    return jid.Server in _PHONE_SERVERS


def is_bridgeable_chat(jid: JID) -> bool:
    """Whether messages in this chat can reach a ticket: not statuses
    (``status@broadcast``), newsletters or bots."""
    return is_phone(jid) or is_lid(jid) or is_group(jid)


def phone_jid(digits_or_e164: str) -> JID:
    """``<digits>@s.whatsapp.net`` for a phone, digits taken as given."""
    digits = digits_of(digits_or_e164)
    if not digits:
        raise InvalidInput(f"not a phone number: {digits_or_e164!r}")
    return make_jid(digits, USER_SERVER)


def address_jid(address: str) -> JID:
    """The JID of a bridge address: a JID passes through, an E.164 phone becomes a
    user JID with the digits as given (see the module doc for the ninth digit)."""
    if "@" in address:
        return non_ad(parse_jid(address))
    return phone_jid(normalize_phone(address))


def party_of(jid: JID, *, alt: JID | None = None, name: str | None = None) -> Party:
    """The :class:`Party` a JID names; ``alt`` is the other identity WhatsApp gave
    with it (a phone JID for a LID, or the reverse), when it gave one.

    Raises :class:`InvalidInput` for JIDs that are neither a person nor a group.
    """
    name = name or None
    if is_group(jid):
        return Party(group=jid_to_str(non_ad(jid)), name=name)
    other = alt if alt is not None and not is_empty(alt) else None
    if is_phone(jid):
        lid = other.User if other is not None and is_lid(other) else None
        return Party(phone=normalize_phone(jid.User), lid=lid, name=name)
    if is_lid(jid):
        if not jid.User:
            raise InvalidInput(f"LID JID without a user: {jid_to_str(jid)!r}")
        phone = normalize_phone(other.User) if other is not None and is_phone(other) else None
        return Party(phone=phone, lid=jid.User, name=name)
    raise InvalidInput(f"not a person or group JID: {jid_to_str(jid)!r}")


def mention_phone(mention: str) -> str | None:
    """E.164 of a mentioned JID string, None when it is not a phone JID (a LID)."""
    try:
        jid = parse_jid(mention)
    except InvalidInput:
        return None
    if not is_phone(jid):
        return None
    try:
        return normalize_phone(jid.User)
    except InvalidInput:
        return None
