from __future__ import annotations

import math

import pytest
import zmq

import peermq
from peermq import ConfigError, OnFull, SocketOptions


@pytest.mark.parametrize(
    "kwargs",
    [
        {"send_hwm": 0},
        {"recv_hwm": -1},
        {"send_hwm": True},
        {"linger": -1.0},
        {"linger": math.inf},
        {"linger": math.nan},
        {"linger": "1"},
        {"max_message_size": 10},
        {"reconnect_interval": 0.0},
        {"reconnect_interval": 1.0, "reconnect_interval_max": 0.5},
        {"heartbeat_interval": -0.1},
        {"send_timeout": math.inf},
        {"on_full": "drop"},
        {"batch_max_bytes": 10},
        {"batch_max_count": 0},
        {"max_topic_length": 0},
        {"max_tracked_streams": 0},
    ],
)
def test_bad_options_raise_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        SocketOptions(**kwargs)  # type: ignore[arg-type]


def test_options_are_frozen_and_safe_by_default() -> None:
    opts = SocketOptions()
    assert opts.linger == 1.0 and math.isfinite(opts.send_timeout)
    assert opts.max_message_size == 8 * 1024 * 1024
    assert opts.on_full is None
    with peermq.Publisher() as pub, peermq.Pusher() as push:
        assert pub.on_full is OnFull.DROP and push.on_full is OnFull.BLOCK
    with pytest.raises(AttributeError):
        opts.linger = 2.0  # type: ignore[misc]


def test_config_error_is_a_value_error_and_a_peermq_error() -> None:
    assert issubclass(ConfigError, ValueError) and issubclass(ConfigError, peermq.PeermqError)
    assert issubclass(peermq.SendTimeoutError, TimeoutError)
    assert issubclass(peermq.SendTimeoutError, peermq.PeerError)
    assert issubclass(peermq.EncodeError, peermq.WireError)


@pytest.mark.parametrize("node_id", ["", "UPPER", "has space", "x" * 65, 5])
def test_bad_node_ids(node_id: object) -> None:
    with pytest.raises(ConfigError):
        peermq.Node(node_id=node_id)  # type: ignore[arg-type]


def test_node_identity_and_close() -> None:
    with peermq.Node(name="worker-1", node_id="abc123") as node:
        assert (node.id, node.name) == ("abc123", "worker-1")
        with peermq.Publisher(node=node) as pub:
            assert pub.node is node
    assert node.closed
    with pytest.raises(peermq.ClosedError):
        peermq.Publisher(node=node)


@pytest.mark.parametrize("endpoint", ["127.0.0.1:5000", "http://x", "", "tcp:/x"])
def test_bad_endpoints_raise_before_io(endpoint: str) -> None:
    with pytest.raises(ConfigError, match="endpoint"):
        peermq.Publisher(bind=endpoint)


def test_bad_subscriber_arguments() -> None:
    with pytest.raises(peermq.TopicError):
        peermq.Subscriber(topics=["a..b"])
    with pytest.raises(ConfigError):
        peermq.Subscriber(headers={"a": 1})  # type: ignore[dict-item]
    with pytest.raises(ConfigError):
        peermq.Subscriber(match="all")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        peermq.Subscriber(on_gap=5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        peermq.Publisher(options={"linger": 1})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make",
    [
        lambda: peermq.Subscriber(headers={"a": 1}),  # type: ignore[dict-item]
        lambda: peermq.Publisher(bind=5),  # type: ignore[arg-type]
        lambda: peermq.Publisher(options={}),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments_are_config_errors(make: object) -> None:
    with pytest.raises(ConfigError):
        make()  # type: ignore[operator]


def test_recv_many_wants_a_positive_count() -> None:
    with peermq.Puller() as pull, pytest.raises(ConfigError):
        pull.recv_many(max_count=0, timeout=0)


def test_ipc_path_in_a_missing_directory_is_not_retriable(tmp_path: object) -> None:
    with peermq.Puller() as pull:
        with pytest.raises(peermq.PeerError) as info:
            pull.bind(f"ipc://{tmp_path}/missing/dir/x.sock")
        assert info.value.retriable is False


def test_heartbeats_off_and_receivers_close_at_once_by_default() -> None:
    assert SocketOptions().heartbeat_interval == 0.0  # docs/design.md: heartbeats lose messages
    with peermq.Publisher() as pub, peermq.Subscriber() as sub, peermq.Puller() as pull:
        assert pub._live().getsockopt(zmq.LINGER) == 1000  # senders: options.linger
        assert sub._live().getsockopt(zmq.LINGER) == 0  # receivers: nothing worth waiting for
        assert pull._live().getsockopt(zmq.LINGER) == 0
        assert sub._live().getsockopt(zmq.HEARTBEAT_IVL) == 0
