"""How ``peermq tap`` shows events: pretty lines, JSON objects, raw and hex, stats tables.

``--json`` objects, one per line, fields in a fixed order (``data`` as in ``peermq sub``: see
``encoding`` in _format.py)::

    {"type":"message","time":..,"sent":..,"node":"<id>","name":"api-1","kind":"pub","stream":1,
     "service":"","topic":"orders.created","seq":7,"size":58,"headers":{},"encoding":"json",
     "data":{"id":7}}
    {"type":"gap","time":..,"node":"<id>","name":"api-1","kind":"pub","stream":1,
     "topic":"orders.created","first":8,"lost":3}
    {"type":"node","event":"joined","time":..,"node":"<id>","name":"api-1","host":"h","pid":42,
     "sockets":[{"stream":1,"kind":"pub","service":"","endpoints":["tcp://..."]}]}
    {"type":"node","event":"left","time":..,"node":"<id>","name":"api-1","reason":"closed"}
    {"type":"node","event":"found","time":..,"node":"<id>","name":"api-1",
     "endpoint":"tcp://...","source":"mdns"}        (a mirror found by discovery)
    {"type":"node","event":"refused","time":..,"node":"","name":"","endpoint":"tcp://...",
     "reason":"the handshake failed: ..."}          (security: this tap gets nothing there)
    {"type":"topic_stats",..}  {"type":"node_stats",..}   (with --stats)
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..tap import (
    NodeFound,
    NodeJoined,
    NodeLeft,
    NodeRefused,
    NodeRow,
    TapGap,
    TapMessage,
    TopicRow,
)
from . import _format

__all__ = [
    "NodeEvent",
    "gap_json",
    "gap_line",
    "message_json",
    "message_line",
    "node_json",
    "node_line",
    "node_stats_json",
    "size_text",
    "stats_view",
    "topic_stats_json",
]


def _who(name: str, node: str) -> str:
    return name or node[:8]


def _socket(kind: str, stream: int) -> str:
    return f"{kind or '?'}/{stream}"


def size_text(size: float) -> str:
    """Bytes, human-sized: ``950 B``, ``12.3 KiB``, ``4.0 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def message_line(msg: TapMessage, *, full: bool = False) -> Text:
    """``time  node  kind/stream  topic  #seq  size  k=v  payload``."""
    kind, payload = _format.payload_text(msg.data, None if full else _format.PAYLOAD_LIMIT)
    text = Text()
    text.append(_format.time_text(msg.received), style="dim")
    text.append(f"  {_who(msg.name, msg.node)}", style="magenta")
    text.append(f"  {_socket(msg.kind, msg.stream)}", style="dim magenta")
    if msg.service:
        text.append(f"  [{msg.service}]", style="blue")
    text.append(f"  {msg.topic}", style="bold cyan")
    text.append(f"  #{msg.seq}", style="dim")
    text.append(f"  {size_text(msg.size)}", style="dim")
    if msg.headers:
        text.append(f"  {_format.headers_text(msg.headers)}", style="yellow")
    text.append("  ")
    text.append(payload, style={"binary": "green", "value": "", "text": ""}[kind])
    return text


def gap_line(gap: TapGap) -> Text:
    last = gap.first + gap.lost - 1
    seqs = f"#{gap.first}" if gap.lost == 1 else f"#{gap.first}..#{last}"
    text = Text()
    text.append(_format.time_text(gap.received), style="dim")
    text.append("  ")
    text.append("!! GAP", style="bold red")
    text.append(f"  {gap.topic}", style="bold cyan")
    text.append(f"  lost {gap.lost} ({seqs})", style="red")
    text.append(f"  from {_who(gap.name, gap.node)} {_socket(gap.kind, gap.stream)}",
                style="magenta")
    return text


NodeEvent = NodeFound | NodeJoined | NodeLeft | NodeRefused


def node_line(event: NodeEvent) -> Text:
    text = Text()
    text.append(_format.time_text(event.received), style="dim")
    text.append("  ")
    if isinstance(event, NodeFound):
        text.append("~~ node found", style="bold blue")
        text.append(f"  {_who(event.name, event.node) or event.endpoint}", style="magenta")
        text.append(f"  (mirror {event.endpoint}, by {event.source})", style="dim")
    elif isinstance(event, NodeRefused):
        text.append("!! refused", style="bold red")
        text.append(f"  {_who(event.name, event.node) or event.endpoint}", style="magenta")
        text.append(f"  (mirror {event.endpoint}): {event.reason}", style="dim")
    elif isinstance(event, NodeJoined):
        text.append("++ node joined", style="bold green")
        text.append(f"  {_who(event.name, event.node)}", style="magenta")
        text.append(f"  ({event.node} on {event.host}, pid {event.pid})", style="dim")
        socks = ", ".join(
            f"{_socket(s.kind, s.stream)} {' '.join(s.endpoints) or '(no endpoint)'}"
            for s in event.sockets
        )
        if socks:
            text.append(f"  {socks}")
    else:
        text.append("-- node left", style="bold yellow")
        text.append(f"  {_who(event.name, event.node)}", style="magenta")
        text.append(f"  ({event.node}): {event.reason.value}", style="dim")
    return text


def message_json(msg: TapMessage) -> dict[str, object]:
    encoding, data = _format.payload_json(msg.data)
    return {
        "type": "message",
        "time": msg.received,
        "sent": msg.sent,
        "node": msg.node,
        "name": msg.name,
        "kind": msg.kind,
        "stream": msg.stream,
        "service": msg.service,
        "topic": msg.topic,
        "seq": msg.seq,
        "size": msg.size,
        "headers": dict(msg.headers),
        "encoding": encoding,
        "data": data,
    }


def gap_json(gap: TapGap) -> dict[str, object]:
    return {
        "type": "gap",
        "time": gap.received,
        "node": gap.node,
        "name": gap.name,
        "kind": gap.kind,
        "stream": gap.stream,
        "topic": gap.topic,
        "first": gap.first,
        "lost": gap.lost,
    }


def node_json(event: NodeEvent) -> dict[str, object]:
    head: dict[str, object] = {"type": "node", "event": "", "time": event.received,
                               "node": event.node, "name": event.name}
    if isinstance(event, NodeRefused):
        return {**head, "event": "refused", "endpoint": event.endpoint, "reason": event.reason}
    if isinstance(event, NodeFound):
        return {**head, "event": "found", "endpoint": event.endpoint, "source": event.source}
    if isinstance(event, NodeJoined):
        return {
            **head,
            "event": "joined",
            "host": event.host,
            "pid": event.pid,
            "sockets": [
                {"stream": s.stream, "kind": s.kind, "service": s.service,
                 "endpoints": list(s.endpoints)}
                for s in event.sockets
            ],
        }
    return {**head, "event": "left", "reason": event.reason.value}


def topic_stats_json(row: TopicRow, now: float) -> dict[str, object]:
    return {
        "type": "topic_stats",
        "time": now,
        "node": row.node,
        "name": row.name,
        "topic": row.topic,
        "messages": row.messages,
        "bytes": row.bytes,
        "rate": round(row.rate, 3),
        "bandwidth": round(row.bandwidth, 1),
        "gaps": row.gaps,
        "last_seq": row.last_seq,
    }


def node_stats_json(row: NodeRow, now: float) -> dict[str, object]:
    return {
        "type": "node_stats",
        "time": now,
        "node": row.node,
        "name": row.name,
        "state": row.state,
        "messages": row.messages,
        "bytes": row.bytes,
        "rate": round(row.rate, 3),
        "bandwidth": round(row.bandwidth, 1),
        "gaps": row.gaps,
        "sent": row.sent,
        "dropped": row.dropped,
        "mirror_lost": row.mirror_lost,
        "dropped_by_peer": {
            peer: n for s in row.sockets for peer, n in sorted(s.dropped_by_peer.items())
        },
    }


def _rate(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.1f}k/s"
    return f"{value:.1f}/s"


def _warn(value: int) -> Text:
    return Text(str(value), style="bold red" if value else "dim")


def stats_view(topics: Sequence[TopicRow], nodes: Sequence[NodeRow], *, title: str) -> Group:
    """The ``--stats`` screen: a table of topics per node, and one of nodes."""
    ttable = Table(title=title, title_justify="left", expand=False, pad_edge=False)
    for col, justify in (("topic", "left"), ("node", "left"), ("msgs", "right"),
                         ("rate", "right"), ("bandwidth", "right"), ("gaps", "right"),
                         ("last seq", "right")):
        ttable.add_column(col, justify=justify)  # type: ignore[arg-type]
    for t in topics:
        ttable.add_row(Text(t.topic, style="cyan"), _who(t.name, t.node), str(t.messages),
                       _rate(t.rate), f"{size_text(t.bandwidth)}/s", _warn(t.gaps),
                       str(t.last_seq))
    ntable = Table(expand=False, pad_edge=False)
    for col, justify in (("node", "left"), ("state", "left"), ("sockets", "left"),
                         ("msgs", "right"), ("rate", "right"), ("gaps", "right"),
                         ("sent", "right"), ("dropped", "right"), ("mirror lost", "right")):
        ntable.add_column(col, justify=justify)  # type: ignore[arg-type]
    for n in nodes:
        kinds = " ".join(f"{k or '?'}x{v}" for k, v in sorted(n.kinds.items()))
        state = Text(n.state, style="green" if n.state == "up" else "yellow")
        ntable.add_row(Text(_who(n.name, n.node), style="magenta"), state, kinds,
                       str(n.messages), _rate(n.rate), _warn(n.gaps), str(n.sent),
                       _warn(n.dropped), _warn(n.mirror_lost))
    return Group(ttable, ntable)
