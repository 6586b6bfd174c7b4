"""A peer written only from docs/protocol.md: plain pyzmq + msgpack, no peermq import.

    python plain_peer.py read ENDPOINT N    -> subscribe to everything, print N decoded messages as JSON
    python plain_peer.py write N            -> bind a PUB, print its endpoint, publish N messages
"""

import json
import sys
import time

import msgpack
import zmq


def read(endpoint: str, n: int) -> None:
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    # last: the marker, so that peermq's wait_for_subscribers counts this subscriber
    sub.setsockopt(zmq.SUBSCRIBE, b"\xffSplainpeer/1")
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(endpoint)
    print("ready", flush=True)
    got = 0
    while got < n:
        if not sub.poll(10_000):
            sys.exit("timed out")
        frame = sub.recv()
        if frame[:1] == b"\xff":
            continue  # a control frame (e.g. the welcome)
        nul = frame.index(b"\x00")
        topic, version = frame[:nul].decode(), frame[nul + 1]
        assert version == 1, version
        kind, node, stream, seq, _ts, headers, data = msgpack.unpackb(frame[nul + 2 :], raw=False)
        items = data if kind == 1 else [data]
        for i, item in enumerate(items):
            out = {"topic": topic, "node": node, "stream": stream, "seq": seq + i,
                   "headers": headers or {}, "data": item.hex() if isinstance(item, bytes) else item,
                   "binary": isinstance(item, bytes)}
            print(json.dumps(out), flush=True)
            got += 1
    sub.close()
    ctx.term()


def write(n: int) -> None:
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.LINGER, 1000)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    print(f"tcp://127.0.0.1:{port}", flush=True)
    # wait for the subscriber's marker subscription (0x01 0xFF 'S' ...): its topics are then active
    while True:
        if not pub.poll(10_000):
            sys.exit("no subscriber")
        if pub.recv().startswith(b"\x01\xffS"):
            break
    for seq in range(1, n + 1):
        body = msgpack.packb([0, "plainpeer", 1, seq, time.time(), {"lang": "plain"},
                              {"n": seq, "blob": bytes([seq % 256])}], use_bin_type=True)
        pub.send(b"plain.hello\x00\x01" + body)
    batch = msgpack.packb([1, "plainpeer", 1, n + 1, time.time(), None, ["b1", "b2"]])
    pub.send(b"plain.batch\x00\x01" + batch)
    sys.stdin.read()
    pub.close()
    ctx.term()


if __name__ == "__main__":
    if sys.argv[1] == "read":
        read(sys.argv[2], int(sys.argv[3]))
    else:
        write(int(sys.argv[2]))
