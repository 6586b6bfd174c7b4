"""A program that knows only docs/protocol.md, pyzmq and msgpack talks with peermq both ways."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import peermq

from ..helpers import readline

PLAIN = os.path.join(os.path.dirname(__file__), "plain_peer.py")


def test_plain_program_reads_what_peermq_publishes() -> None:
    with peermq.Publisher(bind="tcp://127.0.0.1:*") as pub:
        proc = subprocess.Popen([sys.executable, PLAIN, "read", pub.endpoints[0], "4"],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert readline(proc) == "ready"
            pub.wait_for_subscribers(1, timeout=10.0)
            pub.send("orders.created", {"id": 7, "tags": ["a"]}, headers={"region": "eu"})
            pub.send("orders.raw", b"\x00\xff")
            pub.send_many([("orders.batch", 1), ("orders.batch", 2)])
            out, _ = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0
    msgs = [json.loads(line) for line in out.splitlines()]
    assert msgs[0] == {"topic": "orders.created", "node": pub.node.id, "stream": pub.stream,
                       "seq": 1, "headers": {"region": "eu"}, "data": {"id": 7, "tags": ["a"]},
                       "binary": False}
    assert (msgs[1]["data"], msgs[1]["binary"]) == ("00ff", True)
    assert [(m["topic"], m["seq"], m["data"]) for m in msgs[2:]] == [
        ("orders.batch", 1, 1), ("orders.batch", 2, 2)]


def test_peermq_reads_what_a_plain_program_publishes() -> None:
    proc = subprocess.Popen([sys.executable, PLAIN, "write", "3"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        endpoint = readline(proc)
        with peermq.Subscriber(connect=endpoint, topics=["plain.>"]) as sub:
            got = [sub.recv(timeout=10.0) for _ in range(5)]
            assert sub.stats().gaps == 0 and sub.stats().malformed == 0
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
    assert [m.seq for m in got] == [1, 2, 3, 4, 5]
    assert got[0].data == {"n": 1, "blob": b"\x01"}
    assert got[0].headers == {"lang": "plain"} and got[0].sender == "plainpeer"
    assert [m.data for m in got[3:]] == ["b1", "b2"] and got[3].topic == "plain.batch"
