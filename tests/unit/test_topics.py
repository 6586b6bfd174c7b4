from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peermq.errors import TopicError
from peermq.topics import TopicFilter, check_topic, pattern_prefix, topic_matches

SEG = st.text(alphabet="abcxyz019_-", min_size=1, max_size=4)
TOPIC = st.lists(SEG, min_size=1, max_size=5).map(".".join)
PSEG = st.one_of(SEG, st.just("*"))


@st.composite
def patterns(draw: st.DrawFn) -> str:
    segs = draw(st.lists(PSEG, min_size=1, max_size=5))
    if draw(st.booleans()):
        segs.append(">")
    return ".".join(segs)


def reference_match(pattern: str, topic: str) -> bool:
    """Segment by segment, the convention written down in docs/concepts.md."""
    p, t = pattern.split("."), topic.split(".")
    for i, seg in enumerate(p):
        if seg == ">":
            return len(t) > i
        if i >= len(t) or (seg != "*" and seg != t[i]):
            return False
    return len(t) == len(p)


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("orders.created", "orders.created", True),
        ("orders.created", "orders.created.eu", False),
        ("orders.*", "orders.created", True),
        ("orders.*", "orders.created.eu", False),
        ("orders.*", "orders", False),
        ("orders.>", "orders.created.eu", True),
        ("orders.>", "orders", False),
        (">", "anything.at.all", True),
        ("*.created", "orders.created", True),
        ("orders.*.eu", "orders.x.eu", True),
        ("orders.*.eu", "orders.x.us", False),
        ("orders", "ordersx", False),
    ],
)
def test_match_table(pattern: str, topic: str, expected: bool) -> None:
    assert topic_matches(pattern, topic) is expected
    assert TopicFilter([pattern]).matches(topic) is expected


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        ("orders.created", b"orders.created\x00"),
        ("orders.*", b"orders."),
        ("orders.>", b"orders."),
        ("orders.*.eu", b"orders."),
        (">", b""),
        ("*.x", b""),
    ],
)
def test_prefix_table(pattern: str, prefix: bytes) -> None:
    assert pattern_prefix(pattern) == prefix


@given(patterns(), TOPIC)
def test_matcher_agrees_with_reference(pattern: str, topic: str) -> None:
    assert topic_matches(pattern, topic) is reference_match(pattern, topic)


@given(patterns(), TOPIC)
def test_prefix_never_hides_a_match(pattern: str, topic: str) -> None:
    # the publisher filters on the prefix: it must pass every topic the pattern matches
    if topic_matches(pattern, topic):
        assert (topic.encode() + b"\x00").startswith(pattern_prefix(pattern))


@given(st.lists(patterns(), min_size=1, max_size=4), TOPIC)
def test_filter_is_union(pats: list[str], topic: str) -> None:
    assert TopicFilter(pats).matches(topic) is any(reference_match(p, topic) for p in pats)


@pytest.mark.parametrize(
    "bad", ["", ".a", "a.", "a..b", "a b", "a\x00b", "a.*", "a.>", "tab\there", "a\nb", 7, None]
)
def test_bad_topics_raise(bad: object) -> None:
    with pytest.raises(TopicError):
        check_topic(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "a.>.b", "a..b", "a.b c", ">x", "a*"])
def test_bad_patterns_raise(bad: str) -> None:
    with pytest.raises(TopicError):
        TopicFilter([bad])


def test_topic_length_limit() -> None:
    check_topic("a" * 10, max_length=10)
    with pytest.raises(TopicError, match="more than the limit"):
        check_topic("a" * 11, max_length=10)


def test_empty_filter_matches_nothing() -> None:
    assert not TopicFilter([]).matches("a")
    assert TopicFilter([]).prefixes == ()
