"""Ghost ids and names: phone, LID-only, and a group member known by LID."""

from __future__ import annotations

import pytest

from bridge.core.frontend import Author, AuthorKind
from bridge.matrix.ghosts import ghost_localpart, ghost_name

LID = "123456789012345"


@pytest.mark.parametrize(
    ("phone", "lid", "localpart"),
    [
        ("+5511987654321", None, "wa_5511987654321"),
        ("+5511987654321", LID, "wa_5511987654321"),  # the phone's ghost once it is known
        (None, LID, f"wa_lid-{LID}"),
        (f"{LID}@lid", None, f"wa_lid-{LID}"),  # a group member's address
    ],
)
def test_ghost_localpart(phone: str | None, lid: str | None, localpart: str) -> None:
    assert ghost_localpart("wa_", phone=phone, lid=lid) == localpart


@pytest.mark.parametrize(
    ("author", "name"),
    [
        (Author(AuthorKind.CUSTOMER, "Maria", phone="+5511987654321"), "Maria (+5511987654321)"),
        (Author(AuthorKind.CUSTOMER, "Maria", phone="+55119", lid=LID), "Maria (+55119)"),
        (Author(AuthorKind.CUSTOMER, "Maria", lid=LID), f"Maria (LID {LID})"),
        (Author(AuthorKind.CUSTOMER, "", lid=LID), f"LID {LID}"),
        (Author(AuthorKind.CUSTOMER, "Maria", phone=f"{LID}@lid"), f"Maria (LID {LID})"),
        (Author(AuthorKind.CUSTOMER, "+5511987654321", phone="+5511987654321"), "+5511987654321"),
        (Author(AuthorKind.CUSTOMER, ""), "WhatsApp contact"),
    ],
)
def test_ghost_name(author: Author, name: str) -> None:
    assert ghost_name(author) == name
