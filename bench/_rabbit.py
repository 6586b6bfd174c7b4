"""RabbitMQ's durable queue for bench/spool.py, in the same run: a private broker started here
on loopback (AMQP, Erlang distribution and epmd all on 127.0.0.1, fresh data directory), then
persistent messages published with publisher confirms in batches, consumed with an ack each.

Every process started here is ended here, by PID.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from multiprocessing.connection import Connection
from typing import Any

QUEUE = "peermq-bench"
READY_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _publisher(port: int, count: int, size: int, batch: int, conn: Connection) -> None:
    """Publish persistent messages; wait for the broker's confirms after each batch."""
    import pika  # noqa: PLC0415 (spawned)

    body = b"x" * size
    props = pika.BasicProperties(delivery_mode=2)
    state: dict[str, Any] = {"sent": 0, "confirmed": 0, "t0": 0.0}

    def publish_batch(ch: Any) -> None:
        n = min(batch, count - state["sent"])
        for _ in range(n):
            ch.basic_publish("", QUEUE, body, props)
        state["sent"] += n

    def on_confirm(frame: Any) -> None:
        method = frame.method
        if isinstance(method, pika.spec.Basic.Nack):
            raise SystemExit("the broker refused a message")
        tag = method.delivery_tag
        state["confirmed"] = tag if method.multiple else max(state["confirmed"], tag)
        if state["confirmed"] >= state["sent"]:
            if state["sent"] < count:
                publish_batch(state["ch"])
            else:
                state["t1"] = time.perf_counter()
                state["conn"].close()

    def on_channel(ch: Any) -> None:
        state["ch"] = ch
        ch.confirm_delivery(on_confirm)
        ch.queue_declare(QUEUE, durable=True, callback=lambda _: start(ch))

    def start(ch: Any) -> None:
        conn.send("ready")
        conn.recv()
        state["t0"] = time.perf_counter()
        publish_batch(ch)

    params = pika.ConnectionParameters("127.0.0.1", port)
    state["conn"] = pika.SelectConnection(
        params, on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
        on_close_callback=lambda c, _exc: c.ioloop.stop())
    state["conn"].ioloop.start()
    conn.send((state["t0"], state.get("t1", 0.0)))


def _consumer(port: int, count: int, prefetch: int, ack_every: int, conn: Connection) -> None:
    """Consume with manual acks until ``count`` arrived: every message is acknowledged, with
    ``multiple`` acks every ``ack_every`` (as a spooled puller sends ranges of acks)."""
    import pika  # noqa: PLC0415 (spawned)

    c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    ch = c.channel()
    ch.queue_declare(QUEUE, durable=True)
    ch.basic_qos(prefetch_count=prefetch)
    conn.send("ready")
    got = 0
    for method, _props, _body in ch.consume(QUEUE, inactivity_timeout=60.0):
        if method is None:
            break
        got += 1
        if got % ack_every == 0 or got == count:
            ch.basic_ack(method.delivery_tag, multiple=True)
        if got == count:
            break
    t1 = time.perf_counter()
    ch.cancel()
    c.close()
    conn.send((got, t1))


def _wait_ready(port: int, broker: subprocess.Popen[bytes]) -> None:
    import pika  # noqa: PLC0415

    end = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < end:
        if broker.poll() is not None:
            raise RuntimeError(f"rabbitmq-server exited with {broker.returncode}")
        try:
            pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port)).close()
            return
        except Exception:
            time.sleep(0.5)  # the broker is still starting
    raise RuntimeError(f"rabbitmq-server not ready within {READY_TIMEOUT}s")


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def run(server: str, count: int, size: int, batch: int = 100, prefetch: int = 1000,
        ack_every: int = 100) -> dict[str, Any] | str:
    """Start a broker, measure, stop it. A string says why it could not be measured."""
    real = "/usr/lib/rabbitmq/bin/rabbitmq-server"
    script = real if os.path.exists(real) else server
    epmd_bin = shutil.which("epmd")
    if epmd_bin is None:
        return "skipped: epmd (Erlang) not found"
    tmp = tempfile.mkdtemp(prefix="pmq-rabbit-")
    amqp, dist, epmd_port = _free_port(), _free_port(), _free_port()
    with open(os.path.join(tmp, "plugins"), "w") as f:
        f.write("[].\n")
    with open(os.path.join(tmp, "rabbitmq.conf"), "w") as f:
        f.write(f"listeners.tcp.default = 127.0.0.1:{amqp}\n")
    env = {**os.environ, "HOME": tmp, "RABBITMQ_NODENAME": f"pmqbench{os.getpid()}@localhost",
           "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(amqp),
           "RABBITMQ_DIST_PORT": str(dist), "RABBITMQ_MNESIA_BASE": os.path.join(tmp, "db"),
           "RABBITMQ_LOG_BASE": os.path.join(tmp, "log"),
           "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(tmp, "plugins"),
           "RABBITMQ_CONFIG_FILE": os.path.join(tmp, "rabbitmq"),
           "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
           "ERL_EPMD_ADDRESS": "127.0.0.1", "ERL_EPMD_PORT": str(epmd_port)}
    epmd = broker = None
    log = open(os.path.join(tmp, "server.out"), "wb")  # noqa: SIM115 (closed below)
    try:
        # our own epmd, in the foreground, so that it is ours to end (erl would daemonize one)
        epmd = subprocess.Popen([epmd_bin, "-address", "127.0.0.1", "-port", str(epmd_port)],
                                env=env, stdout=log, stderr=log, start_new_session=True)
        broker = subprocess.Popen([script], env=env, stdout=log, stderr=log,
                                  start_new_session=True)
        _wait_ready(amqp, broker)
        ctx = mp.get_context("spawn")
        c_conn, c_child = ctx.Pipe()
        p_conn, p_child = ctx.Pipe()
        consumer = ctx.Process(target=_consumer,
                               args=(amqp, count, prefetch, ack_every, c_child))
        publisher = ctx.Process(target=_publisher, args=(amqp, count, size, batch, p_child))
        consumer.start()
        publisher.start()
        try:
            for c in (c_conn, p_conn):
                if not c.poll(30):
                    raise RuntimeError("a RabbitMQ client did not start")
                c.recv()
            p_conn.send("go")
            if not p_conn.poll(300) or not c_conn.poll(300):
                raise RuntimeError("RabbitMQ clients did not finish")
            t0, t_confirmed = p_conn.recv()
            got, t_consumed = c_conn.recv()
        finally:
            for p in (publisher, consumer):
                p.join(10)
                if p.is_alive():
                    p.kill()
                    p.join(10)
        elapsed = max(t_confirmed, t_consumed) - t0
        return {"count": got, "rate": got / elapsed, "confirm_batch": batch,
                "prefetch": prefetch, "ack_every": ack_every, "size": size}
    except RuntimeError as exc:
        return f"failed: {exc} (log in {tmp})"
    finally:
        _stop(broker)
        _stop(epmd)
        log.close()
        if broker is not None and broker.returncode is not None:
            shutil.rmtree(tmp, ignore_errors=True)
