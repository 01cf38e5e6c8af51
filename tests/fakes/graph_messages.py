"""The message objects of the fake Graph API (tests/fakes/graph_api.py), checked as
Meta's reference documents them: each ``check_*`` refuses what Meta would refuse."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JsonDict = dict[str, Any]

MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
MESSAGE_TYPES = ("text", "location", "contacts", "reaction", "template", *MEDIA_TYPES)
CAPTIONED = ("image", "video", "document")
MAX_TEXT = 4096


class Refused(Exception):
    """A request the fake refuses: Meta's error ``code`` with ``details``."""

    def __init__(self, details: str, *, status: int = 400, code: int = 100) -> None:
        super().__init__(details)
        self.details = details
        self.status = status
        self.code = code


def check_keys(
    value: object,
    where: str,
    *,
    required: Mapping[str, type | tuple[type, ...]],
    optional: Mapping[str, type | tuple[type, ...]] | None = None,
) -> JsonDict:
    if not isinstance(value, dict):
        raise Refused(f"{where} must be an object")
    optional = optional or {}
    for key in value:
        if key not in required and key not in optional:
            raise Refused(f"{where}.{key} is not a known field")
    for key, kind in required.items():
        if not isinstance(value.get(key), kind) or isinstance(value.get(key), bool):
            raise Refused(f"{where}.{key} is required")
    for key, kind in optional.items():
        if key in value and not isinstance(value[key], kind):
            raise Refused(f"{where}.{key} has the wrong type")
    return value


def check_content(
    kind: str,
    value: object,
    *,
    media: Mapping[str, object],
    templates: Mapping[str, tuple[str, int]] | None,
) -> None:
    """Refuse (:class:`Refused`) a message object ``value`` of type ``kind`` Meta would
    refuse; ``media`` are the uploaded files, ``templates`` the approved ones (None:
    any)."""
    if kind == "text":
        text = check_keys(value, "text", required={"body": str}, optional={"preview_url": bool})
        if not text["body"].strip() or len(text["body"]) > MAX_TEXT:
            raise Refused(f"text.body must be 1 to {MAX_TEXT} characters")
    elif kind in MEDIA_TYPES:
        _check_media(kind, value, media)
    elif kind == "location":
        place = check_keys(
            value,
            "location",
            required={"latitude": (int, float), "longitude": (int, float)},
            optional={"name": str, "address": str},
        )
        if not (-90 <= place["latitude"] <= 90 and -180 <= place["longitude"] <= 180):
            raise Refused("location out of range")
    elif kind == "contacts":
        _check_contacts(value)
    elif kind == "reaction":
        reaction = check_keys(value, "reaction", required={"message_id": str, "emoji": str})
        if not reaction["message_id"].startswith("wamid."):
            raise Refused("reaction.message_id must be a WhatsApp message id")
    else:
        _check_template(value, templates)


def _check_media(kind: str, value: object, uploaded: Mapping[str, object]) -> None:
    optional: dict[str, type] = {"id": str, "link": str}
    if kind in CAPTIONED:
        optional["caption"] = str
    if kind == "document":
        optional["filename"] = str
    media = check_keys(value, kind, required={}, optional=optional)
    if ("id" in media) == ("link" in media):
        raise Refused(f"{kind} needs exactly one of id and link")
    if "id" in media and media["id"] not in uploaded:
        raise Refused(f"{kind}.id {media['id']} is not an uploaded file", code=131053)


def _check_contacts(value: object) -> None:
    if not isinstance(value, list) or not value:
        raise Refused("contacts must be a non-empty list")
    for index, contact in enumerate(value):
        where = f"contacts[{index}]"
        card = check_keys(
            contact,
            where,
            required={"name": dict},
            optional={"phones": list, "emails": list, "org": dict, "addresses": list},
        )
        name = check_keys(
            card["name"],
            f"{where}.name",
            required={"formatted_name": str},
            optional={
                k: str for k in ("first_name", "last_name", "middle_name", "suffix", "prefix")
            },
        )
        if len(name) < 2:
            raise Refused(f"{where}.name needs formatted_name and one more part")
        for number, phone in enumerate(card.get("phones", [])):
            check_keys(
                phone,
                f"{where}.phones[{number}]",
                required={"phone": str},
                optional={"type": str, "wa_id": str},
            )
        for number, email in enumerate(card.get("emails", [])):
            check_keys(
                email, f"{where}.emails[{number}]", required={"email": str}, optional={"type": str}
            )
        if "org" in card:
            check_keys(
                card["org"], f"{where}.org", required={}, optional={"company": str, "title": str}
            )


def _check_template(value: object, templates: Mapping[str, tuple[str, int]] | None) -> None:
    template = check_keys(
        value,
        "template",
        required={"name": str, "language": dict},
        optional={"components": list},
    )
    language = check_keys(
        template["language"], "template.language", required={"code": str}, optional={"policy": str}
    )
    count = 0
    for index, component in enumerate(template.get("components", [])):
        part = check_keys(
            component,
            f"template.components[{index}]",
            required={"type": str},
            optional={"parameters": list, "sub_type": str, "index": str},
        )
        for number, parameter in enumerate(part.get("parameters", [])):
            check_keys(
                parameter,
                f"template.components[{index}].parameters[{number}]",
                required={"type": str, "text": str},
            )
            count += 1 if part["type"] == "body" else 0
    if templates is None:
        return
    known = templates.get(template["name"])
    if known is None or known[0] != language["code"]:
        raise Refused(
            f"template name ({template['name']}) does not exist in {language['code']}", code=132001
        )
    if known[1] != count:
        raise Refused(
            f"Number of parameters does not match the expected number of params ({known[1]})",
            code=132000,
        )
