"""What CURVE costs: throughput with and without encryption, for raw pyzmq and for peermq.

    .venv/bin/python -m bench.curve             # about a minute
    .venv/bin/python -m bench.curve --quick     # seconds
    .venv/bin/python -m bench.curve --json out.json

Each measurement is a fresh pair of processes: a sender (PUB, bound on tcp://127.0.0.1, OS-chosen
port) and a receiver (SUB) that times from its first message to its last. Queues are deep
enough that nothing is dropped. peermq runs with ``SecurityOptions`` (two key directories
that trust each other, ZAP in the loop); raw pyzmq with CURVE keys set by hand (no ZAP). The
best of ``--reps`` runs is kept. docs/performance.md ("Security") reports the figures.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection

import zmq

if not __package__:  # run as a script: python bench/curve.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import peermq
from bench._common import arguments, write_json
from peermq.config import SecurityOptions
from peermq.security import TrustStore, init_keys

TIMEOUT = 60.0
"""Seconds any one measurement may take before it is abandoned."""


@dataclass(frozen=True)
class Result:
    impl: str
    secure: bool
    size: int
    count: int
    received: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0


def _raw_sender(conn: Connection, size: int, count: int, secure: bool) -> None:
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.SNDHWM, count + 64)
    pub.setsockopt(zmq.LINGER, 5000)
    server_key = b""
    if secure:
        server_key, secret = zmq.curve_keypair()
        pub.curve_publickey, pub.curve_secretkey = server_key, secret
        pub.curve_server = True
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    conn.send((f"tcp://127.0.0.1:{port}", server_key))
    if not pub.poll(int(TIMEOUT * 1000)):
        raise SystemExit("no subscriber")
    pub.recv()  # the subscription
    frame = b"t\x00" + b"x" * size
    for _ in range(count):
        pub.send(frame)
    conn.recv()  # the receiver is done
    pub.close()
    ctx.term()


def _raw_receive(endpoint: str, server_key: bytes, count: int) -> tuple[int, float]:
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, count + 64)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    if server_key:
        pk, sk = zmq.curve_keypair()
        sub.curve_publickey, sub.curve_secretkey, sub.curve_serverkey = pk, sk, server_key
    sub.connect(endpoint)
    try:
        return _timed(sub.recv, sub, count)
    finally:
        sub.close(0)
        ctx.term()


def _timed(recv: object, sock: zmq.Socket[bytes], count: int) -> tuple[int, float]:
    assert callable(recv)
    if not sock.poll(int(TIMEOUT * 1000)):
        return 0, 0.0
    recv()
    t0 = time.perf_counter()
    got = 1
    while got < count and sock.poll(1000):
        recv()
        got += 1
    return got - 1, time.perf_counter() - t0


def _peermq_sender(conn: Connection, size: int, count: int, keys: str | None) -> None:
    opts = peermq.SocketOptions(send_hwm=count + 64, linger=5.0)
    node = peermq.Node(security=SecurityOptions(keys_dir=keys) if keys else None, mirror=None)
    with node, peermq.Publisher(bind="tcp://127.0.0.1:*", node=node, options=opts) as pub:
        conn.send((pub.endpoints[0], b""))
        pub.wait_for_subscribers(1, timeout=TIMEOUT)
        data = b"x" * size
        for _ in range(count):
            pub.send("t", data)
        conn.recv()


def _peermq_receive(endpoint: str, count: int, keys: str | None) -> tuple[int, float]:
    opts = peermq.SocketOptions(recv_hwm=count + 64)
    node = peermq.Node(security=SecurityOptions(keys_dir=keys) if keys else None, mirror=None)
    with node, peermq.Subscriber(connect=endpoint, node=node, options=opts) as sub:
        sub.recv(timeout=TIMEOUT)
        t0 = time.perf_counter()
        got = 1
        while got < count:
            try:
                got += len(sub.recv_many(1024, timeout=1.0))
            except TimeoutError:
                break
        return got - 1, time.perf_counter() - t0


def measure(impl: str, secure: bool, size: int, count: int, keys: tuple[str, str]) -> Result:
    ctx = mp.get_context("spawn")
    mine, theirs = ctx.Pipe()
    if impl == "raw":
        proc = ctx.Process(target=_raw_sender, args=(theirs, size, count, secure))
    else:
        proc = ctx.Process(target=_peermq_sender,
                           args=(theirs, size, count, keys[0] if secure else None))
    proc.start()
    try:
        if not mine.poll(TIMEOUT):
            raise RuntimeError("sender did not start")
        endpoint, server_key = mine.recv()
        if impl == "raw":
            got, seconds = _raw_receive(endpoint, server_key, count)
        else:
            got, seconds = _peermq_receive(endpoint, count, keys[1] if secure else None)
        mine.send("done")
        proc.join(TIMEOUT)
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()
    return Result(impl, secure, size, count, got, seconds)


def make_keys(root: str) -> tuple[str, str]:
    """Two key directories (sender, receiver) that trust each other."""
    a, b = os.path.join(root, "sender"), os.path.join(root, "receiver")
    ka, kb = init_keys(a), init_keys(b)
    TrustStore(os.path.join(a, "trusted")).trust(kb.public, "receiver")
    TrustStore(os.path.join(b, "trusted")).trust(ka.public, "sender,127.0.0.1")
    return a, b


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__, "few messages, one run each")
    parser.add_argument("--reps", type=int, default=3, help="runs per figure (best is kept)")
    args = parser.parse_args(argv)
    reps = 1 if args.quick else args.reps
    sizes = {64: 200_000, 1024: 100_000, 65536: 5_000}
    if args.quick:
        sizes = {64: 20_000, 1024: 10_000, 65536: 500}
    rows = []
    with tempfile.TemporaryDirectory() as root:
        keys = make_keys(root)
        print(f"{'impl':8} {'size':>6} {'plain msg/s':>12} {'CURVE msg/s':>12} {'cost':>7}")
        for impl in ("raw", "peermq"):
            for size, count in sizes.items():
                best: dict[bool, Result] = {}
                for _ in range(reps):
                    for secure in (False, True):
                        r = measure(impl, secure, size, count, keys)
                        if secure not in best or r.rate > best[secure].rate:
                            best[secure] = r
                plain, curve = best[False], best[True]
                cost = 1 - curve.rate / plain.rate if plain.rate else float("nan")
                print(f"{impl:8} {size:>6} {plain.rate:>12,.0f} {curve.rate:>12,.0f} "
                      f"{cost:>6.1%}", flush=True)
                rows += [asdict(plain) | {"rate": plain.rate}, asdict(curve) | {"rate": curve.rate}]
    write_json(args.json, {"results": rows, "zmq": zmq.zmq_version(), "pyzmq": zmq.__version__})
    return 0


if __name__ == "__main__":
    sys.exit(main())
