"""A Cloud API send's reference (bridge/core/send_references.py) and its place in the
Graph API's message JSON (bridge/whatsapp/cloud/outbound.py)."""

from __future__ import annotations

import pytest

from bridge.core import send_references
from bridge.db.messages import MessageRow
from bridge.errors import PermanentDeliveryError
from bridge.whatsapp.cloud.outbound import with_reference
from bridge.whatsapp.engine import derived_message_id

KEY = "acme/sales"


def row(message_id: int = 41, created_at: float = 1_700_000_000.25) -> MessageRow:
    return MessageRow(
        id=message_id,
        ticket_id=1,
        session_id=1,
        direction="out",
        kind="text",
        wa_id=None,
        sender="@bob:localhost",
        content={"type": "text", "body": "x"},
        quote_wa_id=None,
        timestamp=created_at,
        ack=None,
        created_at=created_at,
    )


def test_a_reference_names_the_row_and_its_derived_id() -> None:
    reference = send_references.reference_for(KEY, row())
    derived = derived_message_id(KEY, message_id=41, created_at=1_700_000_000.25)
    assert reference == f"zb1:41:{derived}"
    assert send_references.message_of(reference) == 41
    assert send_references.names(reference, KEY, row())
    assert send_references.reference_for(KEY, row()) == reference  # the same on every attempt


@pytest.mark.parametrize(
    ("other", "key"),
    [
        (row(42), KEY),  # another row
        (row(created_at=1_700_000_001.0), KEY),  # the same number in another install
        (row(), "acme/support"),  # another session
    ],
)
def test_a_reference_names_no_other_message(other: MessageRow, key: str) -> None:
    assert not send_references.names(send_references.reference_for(KEY, row()), key, other)


@pytest.mark.parametrize(
    "reference",
    ["", "zb1", "zb1:", "zb1:x:3EB0", "zb2:41:3EB0", "zb1:-4:3EB0", "zb1:٤١:3EB0", "41"],
)
def test_other_strings_name_no_row(reference: str) -> None:
    assert send_references.message_of(reference) is None


def test_the_reference_rides_in_the_callback_data() -> None:
    payload = {"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}
    assert with_reference(payload, None) == payload
    assert with_reference(payload, "zb1:1:3EB0") == {
        **payload,
        "biz_opaque_callback_data": "zb1:1:3EB0",
    }
    assert "biz_opaque_callback_data" not in payload  # a new dict
    assert with_reference(payload, "r" * 512)["biz_opaque_callback_data"] == "r" * 512
    for refused in ("", "r" * 513):
        with pytest.raises(PermanentDeliveryError):
            with_reference(payload, refused)
