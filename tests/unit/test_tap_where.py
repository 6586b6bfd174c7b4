"""The --where / --template expression language: what it allows, what it refuses, and that
no input makes it run Python or raise."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peermq.errors import ConfigError
from peermq.tap import Expression, TapMessage
from peermq.tap.where import MAX_LENGTH, Undefined


def msg(data: object = None, **kw: object) -> TapMessage:
    fields: dict[str, object] = {
        "received": 100.5, "topic": "orders.created", "data": data, "headers": {"region": "eu"},
        "node": "a1b2c3", "stream": 2, "seq": 7, "sent": 100.25, "size": 64, "name": "api-1",
        "kind": "pub", "service": "orders",
    }
    fields.update(kw)
    return TapMessage(**fields)  # type: ignore[arg-type]


ORDER = {"price": 120, "tags": ["gold", "eu"], "items": [1, 2, 3], "odd key": [None],
         "nested": {"a": {"b": 5}}, "name": "Ada", "blob": b"\x00\xff"}


@pytest.mark.parametrize("text", [
    "data.price > 100",
    "data.price > 100 and headers.region == 'eu'",
    "topic.startswith('orders.') or seq % 1000 == 0",
    "len(data.items) >= 3 and 'gold' in data.tags",
    "data['odd key'][0] == null",
    "data.nested.a.b == 5",
    "data.items[-1] == 3",
    "1 < seq < 10",
    "data.price * 2 + 1 == 241",
    "data.price / 8 == 15 and data.price // 7 == 17",
    "-data.price < 0 and +data.price > 0",
    "glob(topic, 'orders.*')",
    "lower(data.name) == 'ada' and data.name.upper() == 'ADA'",
    "contains(topic, 'created') and topic.endswith('created')",
    "data.name + '!' == 'Ada!'",
    "int('3') + float('0.5') == 3.5 and str(seq) == '7'",
    "min(1, seq, 3) == 1 and max(seq, 3) == 7 and abs(-2) == 2 and round(2.6) == 3",
    "kind == 'pub' and name == 'api-1' and node == 'a1b2c3' and stream == 2",
    "service == 'orders' and size == 64 and time > sent",
    "'region' in headers and 'tier' not in headers",
    "data.blob == b'\\x00\\xff' and len(data.blob) == 2",
    "data.price if data.price > 1000 else true",
    "seq in [1, 7, 9] and seq in (7,)",
    "data.price is not null and data.missing_or_not is null or true",
    "true and not false",
    "not data.missing",       # missing counts as false, so its negation holds
    "data.missing == 1 or seq == 7",
    "not (data.missing > 1)",
    "(data.missing if data.nope else 1) == 1",
])
def test_true_expressions(text: str) -> None:
    assert Expression(text).matches(msg(ORDER)), text


@pytest.mark.parametrize("text", [
    "data.price < 100",
    "headers.region == 'us'",
    "data.missing > 1",       # a missing key: false, not an error
    "data.missing",           # ... and falsy
    "not data.price",
    "data.items[10] == 1",    # index out of range
    "'a' < 1",                # wrong types
    "data.price / 0 > 1",     # arithmetic error
    "data.tags * 2 == 1",     # no repetition of lists
    "'x' * 1000000 == 'x'",   # nor of strings
    "len(seq) == 1",          # no length of a number
    "data.name.price == 1",   # a key of a string
    "int('abc') == 1",
    "min() == 1",
])
def test_false_or_undefined_expressions(text: str) -> None:
    assert not Expression(text).matches(msg(ORDER)), text


def test_value_raises_undefined_for_a_missing_field() -> None:
    assert Expression("data.price * 2").value(msg(ORDER)) == 240
    with pytest.raises(Undefined):
        Expression("data.nope").value(msg(ORDER))
    with pytest.raises(Undefined):
        Expression("'a' - 1").value(msg(ORDER))


def test_non_mapping_payloads() -> None:
    assert Expression("data == b'raw'").matches(msg(b"raw"))
    assert Expression("data[0] == 114").matches(msg(b"raw"))
    assert Expression("data > 3").matches(msg(4.5))
    assert not Expression("data.x == 1").matches(msg([1, 2]))
    assert Expression("data[1] == 2").matches(msg([1, 2]))


@pytest.mark.parametrize("text, why", [
    ("__import__('os').system('true')", "only these functions"),
    ("open('/etc/passwd')", "only these functions"),
    ("data.__class__.__bases__", None),  # keys, not attributes: valid, but never true
    ("x > 1", "unknown name 'x'"),
    ("2 ** 100", "Pow"),
    ("seq << 3", "LShift"),
    ("lambda: 1", "Lambda"),
    ("[i for i in data]", "ListComp"),
    ("{'a': 1}", "Dict"),
    ("f'{data}'", "JoinedStr"),
    ("(y := 1)", "NamedExpr"),
    ("data[1:2]", "slices"),
    ("len(*data.items)", "positional"),
    ("glob(s=topic)", "positional"),
    ("data.price >", "does not parse"),
    ("", "non-empty"),
    ("   ", "non-empty"),
    ("1 if", "does not parse"),
    ("seq\x00", "does not parse"),
    ("~seq", "Invert"),
    ("data.items.pop()", "only these functions"),
    ("(1).real", None),
])
def test_refused(text: str, why: str | None) -> None:
    if why is None:
        assert not Expression(text).matches(msg(ORDER))
        return
    with pytest.raises(ConfigError, match=why):
        Expression(text)


def test_size_bounds() -> None:
    with pytest.raises(ConfigError, match="characters"):
        Expression("1 + " * (MAX_LENGTH // 4) + "1")
    with pytest.raises(ConfigError, match="too complex"):
        Expression(" + ".join(["seq"] * 200))
    Expression(" + ".join(["seq"] * 50))  # well inside the bounds


def test_error_names_the_column() -> None:
    with pytest.raises(ConfigError, match=r"column 19: unknown name 'prise'"):
        Expression("data.price > 1 or prise")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_compiles_or_is_refused_and_never_raises_on_evaluation(text: str) -> None:
    try:
        expr = Expression(text)
    except ConfigError:
        return
    for payload in (ORDER, b"\x00", None, [1, "a"], 3.5, "text"):
        assert expr.matches(msg(payload)) in (True, False)
