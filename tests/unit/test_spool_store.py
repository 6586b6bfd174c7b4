"""The sender's spool (log + checkpoint + dead letters + lock) and the puller's dedup store."""

from __future__ import annotations

import os
from pathlib import Path

import msgpack
import pytest

from peermq.config import SpoolOptions
from peermq.errors import SpoolError, SpoolFullError, SpoolLockedError
from peermq.spool import DedupStore, DedupWindow, Spool
from peermq.spool import _records as rec
from peermq.spool.link import STREAM, Hello
from peermq.spool.stream import StreamLog

SMALL = SpoolOptions(segment_bytes=4096, max_bytes=64 * 1024, checkpoint_interval=0.001)


def deliver_all(spool: Spool, now: float = 0.0) -> list[int]:
    """Hand every stored message to one link, as the link thread would."""
    d = spool.deliveries
    link = d.link_up("p", 10**6)
    seqs = list(range(d.cursor, spool.deliverable + 1))
    d.sent(link, seqs, now)
    return seqs


def test_state_survives_a_reopen(tmp_path: Path) -> None:
    with Spool(tmp_path / "s", SMALL) as spool:
        sid = spool.id
        spool.append([b"m%d" % i for i in range(1, 11)])
        spool.sync()
        deliver_all(spool)
        spool.deliveries.ack([1, 2, 3, 5])
    with Spool(tmp_path / "s", SMALL) as spool:
        assert spool.id == sid
        d = spool.deliveries
        assert d.cursor == 11 and sorted(d.attempts) == [4, 6, 7, 8, 9, 10]
        assert sorted(d.due(1e9, 100)) == [4, 6, 7, 8, 9, 10]
        assert spool.stats().pending == 6


def test_acked_segments_are_deleted_whole(tmp_path: Path) -> None:
    with Spool(tmp_path / "s", SMALL) as spool:
        for _ in range(300):
            spool.append([b"x" * 100])
        spool.sync()
        before = spool.stats()
        assert before.segments > 5
        seqs = deliver_all(spool)
        spool.deliveries.ack(seqs[:-1])
        assert spool.checkpoint(force=True)
        after = spool.stats()
        assert after.segments == 1 and after.bytes < before.bytes
        assert after.first_seq > 250 and after.pending == 1  # the active segment stays
        spool.deliveries.ack([300])
        spool.checkpoint(force=True)
        assert spool.stats().messages == 0


def test_a_full_spool_refuses_then_frees_room_on_acks(tmp_path: Path) -> None:
    with Spool(tmp_path / "s", SMALL) as spool:
        with pytest.raises(SpoolFullError, match="max_bytes"):
            for _ in range(10_000):
                spool.append([b"y" * 500])
        assert spool.full
        spool.sync()
        spool.deliveries.ack(deliver_all(spool))
        spool.checkpoint(force=True)
        assert not spool.full
        spool.append([b"after"])


def test_dead_letters_keep_the_message_and_why(tmp_path: Path) -> None:
    with Spool(tmp_path / "s", SMALL) as spool:
        spool.append([b"poison", b"fine"])
        spool.sync()
        deliver_all(spool)
        assert spool.bury([1], "rejected") == 1
        assert spool.stats().dead == 1 and 1 not in spool.deliveries.attempts
        data, _ = spool.dead.read(1, 1, 0)
        seq, count, reason, _, frame = msgpack.unpackb(data[rec.HEADER :])
        assert (seq, count, reason, frame) == (1, 1, "rejected", b"poison")
    with Spool(tmp_path / "s", SMALL) as spool:
        assert spool.stats().dead == 1


def test_a_second_open_names_the_holder(tmp_path: Path) -> None:
    with Spool(tmp_path / "s", SMALL), pytest.raises(SpoolLockedError) as err:
        Spool(tmp_path / "s", SMALL)
    assert err.value.pid == os.getpid() and str(os.getpid()) in str(err.value)
    Spool(tmp_path / "s", SMALL).close()  # free again once closed


def test_a_damaged_checkpoint_means_redelivery_not_loss(tmp_path: Path) -> None:
    with Spool(tmp_path / "s", SMALL) as spool:
        spool.append([b"a", b"b"])
        spool.sync()
        spool.deliveries.ack(deliver_all(spool))
    (tmp_path / "s" / "checkpoint").write_bytes(b"PMQF\x00\x00\x00\x00garbage")
    with Spool(tmp_path / "s", SMALL) as spool:
        assert spool.checkpoint_damaged and spool.deliveries.cursor == 1
        assert spool.stats().pending == 2


def test_a_directory_of_another_kind_is_refused(tmp_path: Path) -> None:
    DedupStore(tmp_path / "p", SMALL).close()
    with pytest.raises(SpoolError, match="puller spool, not a queue spool"):
        Spool(tmp_path / "p", SMALL)


def test_dedup_window_forgets_by_age_and_count() -> None:
    now = [0.0]
    w = DedupWindow(10.0, 1000, clock=lambda: now[0])
    w.add("s", 1, 111)
    assert w.seen("s", 1, 111) and not w.seen("s", 1, 222) and not w.seen("t", 1, 111)
    now[0] = 30.0
    w.add("s", 2, 5)
    assert not w.seen("s", 1, 111) and w.seen("s", 2, 5)
    small = DedupWindow(1e9, 80, clock=lambda: now[0])
    for i in range(1000):
        small.add("s", i, 0)
    assert len(small) <= 80 and small.seen("s", 999, 0) and not small.seen("s", 0, 0)
    off = DedupWindow(10.0, 0)
    off.add("s", 1, 1)
    assert not off.seen("s", 1, 1)


def test_dedup_store_remembers_across_a_restart(tmp_path: Path) -> None:
    with_store = DedupStore(tmp_path / "p", SMALL)
    try:
        with_store.record({"spool-a": [(1, 10), (2, 20)], "spool-b": [(1, 30)]})
    finally:
        with_store.close()
    again = DedupStore(tmp_path / "p", SMALL)
    try:
        w = again.window
        assert w.seen("spool-a", 1, 10) and w.seen("spool-a", 2, 20) and w.seen("spool-b", 1, 30)
        assert not w.seen("spool-b", 2, 30)
    finally:
        again.close()


def test_max_age_sends_what_is_old_and_unacked_to_the_dead_letters(tmp_path: Path) -> None:
    opts = SpoolOptions(segment_bytes=4096, max_age=60.0, checkpoint_interval=0.001)
    with Spool(tmp_path / "s", opts) as spool:
        spool.append([b"m%d" % i for i in range(1, 101)])
        spool.sync()
        d = spool.deliveries
        link = d.link_up("p", 10)
        d.sent(link, [1, 2, 3], 0.0)
        d.ack([2])
        spool.checkpoint(force=True)
        assert spool.stats().dead == 0  # young
        for seg in spool.log.segments():
            seg.newest -= 120.0  # as if written two minutes ago
        spool.checkpoint(force=True)
        st = spool.stats()
        assert st.dead == 99 and st.pending == 0 and st.messages == 0
        reasons = {
            msgpack.unpackb(body)[2] for _, body in spool._dead_records()  # type: ignore[attr-defined]
        }
        assert reasons == {"expired"}
        spool.append([b"new"])
        assert spool.stats().pending == 1


def test_retention_reports_unacked_deliveries_it_deletes_as_lost(tmp_path: Path) -> None:
    opts = SpoolOptions(segment_bytes=4096, max_bytes=8192, checkpoint_interval=0.001)
    hello = Hello("receiver", "n2", "sub", "", 100, "n2/1", False, STREAM, "slow", (">",),
                  ("seq", 1.0))
    with StreamLog(tmp_path / "log", opts) as log:
        log.append([b"t\x00x" * 10 for _ in range(5)])
        log.sync()
        c = log.attach(b"rid", hello, 0.0)
        link = c.deliveries.link_up(b"rid", 100)
        c.deliveries.sent_new(link, [1, 2, 3], 0.0)  # in flight to a link that then dies
        log.detach(b"rid", 0.0)
        for _ in range(300):
            log.append([b"t\x00" + b"y" * 100])
        log.sync()
        log.checkpoint(force=True)
        first = log.log.first_seq()
        assert first > 4
        # every seq below the first kept is accounted for: in flight (1-3) or never sent (4-)
        assert c.gaps == [(1, 3), (4, first - 1)]
