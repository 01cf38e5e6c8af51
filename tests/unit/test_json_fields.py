"""The typed-JSON field reader (bridge/json_fields.py): what each read returns, how
each refusal is worded, and that the four edges reading outside JSON word the same
refusal each its own way."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import InvalidInput
from bridge.json_fields import JsonFields, Wording, is_integer, is_number
from bridge.matrix import fields as matrix_fields
from bridge.slack import payload as slack_payload
from bridge.whatsapp import sim_bodies


class Refused(Exception):
    """The error of the test readers, so that no other error passes for a refusal."""


class Plain(JsonFields):
    """The default wording."""

    __slots__ = ()
    wording = Wording(error=Refused)


class Terse(JsonFields):
    """Every template changed, and strings may not hold NUL."""

    __slots__ = ()
    wording = Wording(
        error=Refused,
        wrong_type="{field}: {got}, not {expected}",
        missing="{field}: missing ({expected})",
        unfit="{field}: not {expected}",
        too_long="{field}: over {limit}",
        empty="{field}: empty",
        nul="{field}: NUL",
        too_many="{field}: over {limit} entries",
        whole="the thing",
        boolean="yes or no",
    )
    refuse_nul = True


Read = Callable[[JsonFields], Any]


def _raise(error: Exception) -> None:
    raise error


# --- reads that succeed ---------------------------------------------------------------

DATA: dict[str, Any] = {
    "s": "oi",
    "empty": "",
    "nul": "a\x00b",
    "n": 2.5,
    "i": 7,
    "big": 10**400,
    "yes": True,
    "null": None,
    "obj": {"x": 1},
    "list": [{"a": 1}, {}],
}


@pytest.mark.parametrize(
    ("read", "expected"),
    [
        (lambda f: f.string("s"), "oi"),
        (lambda f: f.string("s", limit=2), "oi"),
        (lambda f: f.string("empty"), ""),
        (lambda f: f.string("nul"), "a\x00b"),  # kept unless the reader refuses NUL
        (lambda f: f.optional_string("absent"), None),
        (lambda f: f.optional_string("null"), None),
        (lambda f: f.number("n"), 2.5),
        (lambda f: f.number("i", bounds=(7, 7)), 7.0),
        (lambda f: type(f.number("i")), float),
        (lambda f: f.optional_number("null"), None),
        (lambda f: f.optional_integer("i", bounds=(0, 7)), 7),
        (lambda f: f.optional_integer("absent", bounds=(0, 7)), None),
        (lambda f: f.optional_integer("big", bounds=(0, math.inf)), 10**400),
        (lambda f: f.boolean("yes"), True),
        (lambda f: f.optional_boolean("null"), None),
        (lambda f: f.mapping("obj").data, {"x": 1}),
        (lambda f: f.mapping("obj").path, "top.obj"),
        (lambda f: f.optional_mapping("absent"), None),
        (
            lambda f: (f.mapping_or_empty("absent").data, f.mapping_or_empty("absent").path),
            ({}, "top.absent"),
        ),
        (
            lambda f: [(o.path, o.data) for o in f.objects("list", limit=2)],
            [("top.list[0]", {"a": 1}), ("top.list[1]", {})],
        ),
        (lambda f: f.objects("absent", limit=0), []),
        (lambda f: (f.has("s"), f.has("null"), f.has("absent")), (True, False, False)),
        (lambda f: (f.raw("null", 1), f.raw("absent", 1)), (None, 1)),
        (lambda f: f.where("k"), "top.k"),
    ],
)
def test_reads_return_typed_values(read: Read, expected: Any) -> None:
    assert read(Plain(DATA, "top")) == expected


def test_reads_keep_the_reader_class_and_a_path_only_when_given() -> None:
    top = Terse({"a": {"b": {}}})
    assert isinstance(top.mapping("a"), Terse) and top.mapping("a").mapping("b").path == "a.b"
    assert top.where("a") == "a"


# --- refusals, in the default wording and in another --------------------------------------


@pytest.mark.parametrize(
    ("data", "read", "plain", "terse"),
    [
        (
            {"k": 5},
            lambda f: f.string("k"),
            "top.k must be a string",
            "top.k: a number, not a string",
        ),
        (
            {"k": ["x"]},
            lambda f: f.optional_string("k"),
            "top.k must be a string",
            "top.k: a list, not a string",
        ),
        ({}, lambda f: f.string("k"), "top.k is required", "top.k: missing (a string)"),
        ({"k": None}, lambda f: f.string("k"), "top.k is required", "top.k: missing (a string)"),
        (
            {"k": ""},
            lambda f: f.string("k", allow_empty=False),
            "top.k must not be empty",
            "top.k: empty",
        ),
        (
            {"k": "abc"},
            lambda f: f.string("k", limit=2),
            "top.k is longer than 2 characters",
            "top.k: over 2",
        ),
        (
            {"k": 1.5},
            lambda f: f.number("k", bounds=(0, 1)),
            "top.k must be a number from 0 to 1",
            "top.k: not a number from 0 to 1",
        ),
        (
            {"k": -1},
            lambda f: f.number("k", bounds=(0, 0.5)),
            "top.k must be a number from 0 to 0.5",
            "top.k: not a number from 0 to 0.5",
        ),
        (
            {"k": math.nan},
            lambda f: f.number("k", bounds=(0, 9)),
            "top.k must be a number from 0 to 9",
            "top.k: not a number from 0 to 9",
        ),
        (
            {"k": 10**400},
            lambda f: f.number("k", bounds=(0, 9)),
            "top.k must be a number from 0 to 9",
            "top.k: not a number from 0 to 9",
        ),
        (
            {"k": True},
            lambda f: f.number("k"),
            "top.k must be a number",
            "top.k: a boolean, not a number",
        ),
        (
            {"k": "1"},
            lambda f: f.number("k"),
            "top.k must be a number",
            "top.k: a string, not a number",
        ),
        ({}, lambda f: f.number("k"), "top.k is required", "top.k: missing (a number)"),
        (
            {"k": 8},
            lambda f: f.optional_integer("k", bounds=(0, 7)),
            "top.k must be an integer from 0 to 7",
            "top.k: not an integer from 0 to 7",
        ),
        (
            {"k": 1.0},
            lambda f: f.optional_integer("k", bounds=(0, 7)),
            "top.k must be an integer from 0 to 7",
            "top.k: not an integer from 0 to 7",
        ),
        (
            {"k": False},
            lambda f: f.optional_integer("k", bounds=(0, 7), expected="a count"),
            "top.k must be a count",
            "top.k: not a count",
        ),
        (
            {"k": "no"},
            lambda f: f.boolean("k"),
            "top.k must be a boolean",
            "top.k: a string, not yes or no",
        ),
        ({}, lambda f: f.boolean("k"), "top.k is required", "top.k: missing (yes or no)"),
        (
            {"k": []},
            lambda f: f.mapping("k"),
            "top.k must be an object",
            "top.k: a list, not an object",
        ),
        (
            {"k": "x"},
            lambda f: f.mapping_or_empty("k"),
            "top.k must be an object",
            "top.k: a string, not an object",
        ),
        ({}, lambda f: f.mapping("k"), "top.k is required", "top.k: missing (an object)"),
        (
            {"k": {}},
            lambda f: f.objects("k", limit=3),
            "top.k must be a list",
            "top.k: an object, not a list",
        ),
        (
            {"k": [{}, {}]},
            lambda f: f.objects("k", limit=1),
            "top.k has more than 1 entries",
            "top.k: over 1 entries",
        ),
        (
            {"k": [{}, 3]},
            lambda f: f.objects("k", limit=3),
            "top.k[1] must be an object",
            "top.k[1]: a number, not an object",
        ),
        ({}, lambda f: _raise(f.unfit("k", "odd")), "top.k must be odd", "top.k: not odd"),
        (
            {},
            lambda f: _raise(f.wrong_type("k", None, "odd")),
            "top.k must be odd",
            "top.k: null, not odd",
        ),
    ],
)
def test_refusals_name_the_field_path_in_the_wording(
    data: dict[str, Any], read: Read, plain: str, terse: str
) -> None:
    for reader, message in ((Plain(data, "top"), plain), (Terse(data, "top"), terse)):
        with pytest.raises(Refused) as caught:
            read(reader)
        assert str(caught.value) == message


def test_nul_is_refused_only_by_a_reader_that_says_so() -> None:
    assert Plain({"k": "a\x00"}).string("k") == "a\x00"
    with pytest.raises(Refused, match=r"^k: NUL$"):
        Terse({"k": "a\x00"}).string("k")
    with pytest.raises(Refused, match=r"^k: over 1$"):  # the length is checked first
        Terse({"k": "a\x00"}).string("k", limit=1)


def test_checked_number_checks_a_value_given_apart() -> None:
    reader = Plain({})
    assert reader.checked_number("k", 3, bounds=(0, 3)) == 3.0
    with pytest.raises(Refused, match=r"^k must be a number$"):
        reader.checked_number("k", None)  # null is of the wrong type here, not absent


@pytest.mark.parametrize(
    ("value", "path", "plain", "terse"),
    [
        ([], "", "the object must be an object", "the thing: a list, not an object"),
        ("x", "a.b", "a.b must be an object", "a.b: a string, not an object"),
        (None, "", "the object must be an object", "the thing: null, not an object"),
    ],
)
def test_of_refuses_what_is_not_an_object(value: Any, path: str, plain: str, terse: str) -> None:
    for reader, message in ((Plain, plain), (Terse, terse)):
        with pytest.raises(Refused) as caught:
            reader.of(value, path)
        assert str(caught.value) == message
    assert Plain.of({"a": 1}, "p").data == {"a": 1}


@pytest.mark.parametrize(
    ("value", "bounds", "number", "integer"),
    [
        (3, (0, 3), True, True),
        (4, (0, 3), True, False),
        (3.0, (0, 3), True, False),
        (True, (0, 3), False, False),
        (None, (0, 3), False, False),
        ("3", (0, 3), False, False),
        (10**400, (0, math.inf), True, True),
    ],
)
def test_number_predicates(
    value: Any, bounds: tuple[float, float], number: bool, integer: bool
) -> None:
    assert is_number(value) is number
    assert is_integer(value, bounds) is integer


# --- any JSON: a typed value or the reader's own error ----------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3)
    ),
    max_leaves=10,
)
_READS: list[tuple[Read, type | tuple[type, ...]]] = [
    (lambda f: f.string("k", limit=3, allow_empty=False), str),
    (lambda f: f.number("k", bounds=(-1, 1)), float),
    (lambda f: f.optional_integer("k", bounds=(0, 9)), (int, type(None))),
    (lambda f: f.boolean("k"), bool),
    (lambda f: f.mapping("k"), Terse),
    (lambda f: f.objects("k", limit=2), list),
]


@settings(max_examples=300, deadline=None)
@given(value=_JSON)
def test_any_json_value_reads_as_its_type_or_is_refused(value: Any) -> None:
    reader = Terse({"k": value})
    for read, kind in _READS:
        try:
            got = read(reader)
        except Refused as refused:
            assert str(refused).startswith("k")
        else:
            assert isinstance(got, kind)


# --- the edges: one refusal, four wordings ------------------------------------------------


@pytest.mark.parametrize(
    ("read", "error", "message"),
    [
        (
            lambda: matrix_fields.Fields({"k": 1}, "content").text("k"),
            matrix_fields.MalformedEvent,
            "content.k is a number, not a string",
        ),
        (
            lambda: matrix_fields.Fields.of([], ""),
            matrix_fields.MalformedEvent,
            "the event is a list, not an object",
        ),
        (
            lambda: matrix_fields.Fields({"k": "x"}).flag("k", default=False),
            matrix_fields.MalformedEvent,
            "k is a string, not a boolean",
        ),
        (
            lambda: slack_payload.Fields({"k": 1}, "event").text("k"),
            InvalidInput,
            "event.k: expected a string, got a number",
        ),
        (lambda: slack_payload.Fields({}, "event").text("k"), InvalidInput, "event.k: missing"),
        (
            lambda: slack_payload.Fields({"k": "a\x00"}, "event").text("k"),
            InvalidInput,
            "event.k: holds a NUL character",
        ),
        (
            lambda: slack_payload.Fields("x", ""),
            InvalidInput,
            "the payload: expected an object, got a string",
        ),
        (
            lambda: slack_payload.Fields({"k": -1}, "file").optional_size("k"),
            InvalidInput,
            "file.k: expected a byte count",
        ),
        (
            lambda: sim_bodies.Fields({"k": 1}).text("k", limit=9),
            InvalidInput,
            "k must be a string",
        ),
        (
            lambda: sim_bodies.Fields({"k": ""}).text("k", limit=9),
            InvalidInput,
            "k must not be empty",
        ),
        (
            lambda: sim_bodies.Fields({"m": {}}).mapping("m").text("k", limit=9),
            InvalidInput,
            "m.k is required",
        ),
        (
            lambda: sim_bodies.read_fault({"kind": "ban", "seconds": None}),
            InvalidInput,
            "seconds must be a number",
        ),
    ],
)
def test_each_edge_words_its_refusals(read: Callable[[], Any], error: type, message: str) -> None:
    with pytest.raises(error) as caught:
        read()
    assert str(caught.value) == message
