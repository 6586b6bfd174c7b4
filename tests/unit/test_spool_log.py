"""The segment log: append, read, roll, reopen, seals, and recovery from torn tails and flipped
bits.

The property tests stand in for a power loss: they work on copies of real segment files,
cut at or after the last flushed offset, add zeros or random bytes, and flip bits.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peermq.config import Fsync
from peermq.errors import SpoolError
from peermq.spool import _records as rec
from peermq.spool.log import Log, Recovery

SEGMENT = 4096


def make_log(directory: Path, *, fsync: Fsync = Fsync.BATCH, segment: int = SEGMENT) -> Log:
    return Log(str(directory / "log"), kind=rec.Kind.MESSAGE, segment_bytes=segment,
               max_record=1 << 20, fsync=fsync, quarantine=str(directory / "quarantine"))


def body(n: int) -> bytes:
    return f"message {n} ".encode() * (1 + n % 7)


def read_all(log: Log) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    seq = 1
    while True:
        data, found = log.read(seq, 1 << 62, 1 << 20)
        if not found:
            return out
        for s, off in found:
            out[s] = data[off + rec.HEADER : off + rec.record_length(data, off)]
        seq = found[-1][0] + 1


def test_append_read_roll_and_reopen(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    assert log.open().clean
    for i in range(1, 201):
        assert log.append([body(i)]) == i
    assert log.append([body(i) for i in range(201, 251)]) == 250
    assert log.sync() == 250
    assert len(log.segments()) > 3
    assert read_all(log) == {i: body(i) for i in range(1, 251)}
    _, found = log.read(120, 122, 0)
    assert [s for s, _ in found] == [120]
    log.close()
    again = make_log(tmp_path)
    r = again.open()
    assert r.clean and r.records == 250 and (r.first, r.last) == (1, 250)
    assert again.next_seq == 251
    assert read_all(again) == {i: body(i) for i in range(1, 251)}
    again.close()


def test_delete_before_frees_whole_sealed_segments_only(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    log.open()
    for i in range(1, 301):
        log.append([body(i)])
    segs = log.segments()
    cut = segs[2].first
    before = log.size
    freed = log.delete_before(cut + 1)  # the segment holding `cut` is not wholly below
    assert freed == sum(s.size for s in segs[:2]) and log.size == before - freed
    assert min(read_all(log)) == segs[2].first
    log.delete_before(10**9)
    assert len(log.segments()) == 1  # never the active segment
    log.close()


def test_torn_tail_is_cut_and_reported(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    log.open()
    for i in range(1, 11):
        log.append([body(i)])
    path = log.segments()[-1].path
    log.close()
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        f.truncate(size - 5)
        f.seek(0, os.SEEK_END)
        f.write(b"\x00" * 64)
    log = make_log(tmp_path)
    r = log.open()
    assert [d.kind for d in r.damage] == ["torn-tail"]
    assert read_all(log) == {i: body(i) for i in range(1, 10)}
    assert log.append([b"after"]) == 10  # seq 10 was never whole: it may be given again
    log.close()
    assert make_log(tmp_path).open().clean


def segment_files(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(".seg"))


def test_sealed_segments_open_by_their_seal(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    log.open()
    for i in range(1, 201):
        log.append([body(i)])
    sealed = [s.path for s in log.segments()[:-1]]
    log.close()
    seals = sorted(n for n in os.listdir(tmp_path / "log") if n.endswith(".seal"))
    assert len(sealed) >= 3 and seals == [os.path.basename(p) + ".seal" for p in sealed]
    again = make_log(tmp_path)
    r = again.open()
    assert r.clean and r.sealed == len(sealed) and r.records == 200
    assert read_all(again) == {i: body(i) for i in range(1, 201)}
    assert again.append([b"on"]) == 201
    again.delete_before(10**9)  # a deleted segment takes its seal with it
    assert [n for n in os.listdir(tmp_path / "log") if n.endswith(".seal")] == []
    again.close()


@pytest.mark.parametrize("harm", ["missing", "flipped", "stale", "junk"])
def test_a_seal_that_does_not_vouch_means_a_full_scan_then_a_new_seal(
    tmp_path: Path, harm: str
) -> None:
    log = make_log(tmp_path)
    log.open()
    for i in range(1, 201):
        log.append([body(i)])
    victim = log.segments()[1].path + ".seal"
    other = log.segments()[2].path + ".seal"
    log.close()
    if harm == "missing":  # a spool written before seals, or a crash before the seal
        os.unlink(victim)
    elif harm == "flipped":
        data = bytearray(Path(victim).read_bytes())
        data[-3] ^= 0x10
        Path(victim).write_bytes(bytes(data))
    elif harm == "stale":  # another segment's seal: the crc of other bytes
        shutil.copyfile(other, victim)
    else:
        Path(victim).write_bytes(b"not a seal")
    again = make_log(tmp_path)
    r = again.open()
    assert r.clean and r.sealed == r.segments - 2  # the victim and the active one scanned
    assert read_all(again) == {i: body(i) for i in range(1, 201)}
    again.close()
    assert make_log(tmp_path).open().sealed == r.segments - 1  # sealed again by that scan


def test_flipped_bit_in_a_sealed_segment_is_quarantined_and_never_served(
    tmp_path: Path,
) -> None:
    log = make_log(tmp_path)
    log.open()
    for i in range(1, 201):
        log.append([body(i)])
    victim = log.segments()[1]
    log.close()
    assert os.path.exists(victim.path + ".seal")  # the seal no longer vouches: it is scanned
    with open(victim.path, "r+b") as f:
        f.seek(rec.SEGMENT_HEADER + 30)
        byte = f.read(1)
        f.seek(rec.SEGMENT_HEADER + 30)
        f.write(bytes([byte[0] ^ 0x04]))
    log = make_log(tmp_path)
    r = log.open()
    assert len(r.damage) == 1
    d = r.damage[0]
    assert d.kind == "corrupt" and d.lost == ((victim.first, victim.first),)
    assert d.quarantined is not None and (tmp_path / d.quarantined).exists()
    assert read_all(log) == {i: body(i) for i in range(1, 201) if i != victim.first}
    log.close()
    again = make_log(tmp_path)
    r = again.open()
    assert r.clean and r.sealed == r.segments - 1  # what was kept is sealed anew
    again.close()


def test_a_crash_while_creating_a_segment_is_repaired(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    log.open()
    log.append([b"one"])
    log.close()
    # a new segment file that got its name but not its header
    (tmp_path / "log" / f"{2:020d}.seg").write_bytes(b"")
    log = make_log(tmp_path)
    r = log.open()
    assert r.clean and log.append([b"two"]) == 2
    log.close()


def test_a_failed_flush_is_never_reported_durable(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    log.open()
    log.append([b"one"])
    assert log.sync() == 1
    log.append([b"two"])
    seg = log.segments()[-1]
    os.close(seg.fd)  # the next fdatasync fails (EBADF) as a dying disk would
    seg.fd = os.open(os.devnull, os.O_RDONLY)
    os.close(seg.fd)
    with pytest.raises(SpoolError, match="Nothing after seq 1 was reported durable"):
        log.sync()
    assert log.durable_seq == 1
    with pytest.raises(SpoolError):
        log.append([b"three"])
    log.close()


# -- power loss, as property tests on copies of real segments


Written = tuple[Path, dict[int, bytes], int, int]


@pytest.fixture(scope="module")
def written() -> Iterator[Written]:
    """A real log of 300 records, flushed up to record 250; also the newest segment's size
    at that flush (what a power loss cannot take back)."""
    base = Path(tempfile.mkdtemp(prefix="pmq-log-"))
    log = make_log(base)
    log.open()
    for i in range(1, 251):
        log.append([body(i)])
    durable = log.sync()
    at_flush = log.segments()[-1]
    for i in range(251, 301):
        log.append([body(i)])
    newest = log.segments()[-1]
    flushed = at_flush.size if newest is at_flush else rec.SEGMENT_HEADER
    log.close()
    yield base, {i: body(i) for i in range(1, 301)}, durable, flushed
    shutil.rmtree(base, ignore_errors=True)


def _copy(src: Path) -> Path:
    dst = Path(tempfile.mkdtemp(prefix="pmq-copy-"))
    shutil.copytree(src / "log", dst / "log")
    return dst


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0), tail=st.one_of(
    st.binary(max_size=300), st.integers(min_value=1, max_value=4096).map(lambda n: b"\x00" * n)))
def test_power_loss_keeps_every_flushed_record(written: Written, cut: int, tail: bytes) -> None:
    base, records, durable, flushed = written
    root = _copy(base)
    try:
        names = segment_files(root / "log")
        newest = root / "log" / names[-1]
        size = newest.stat().st_size
        # what came after the last flush may be lost: cut there or later, then add junk
        with open(newest, "r+b") as f:
            f.truncate(flushed + cut % (size - flushed + 1))
            f.seek(0, os.SEEK_END)
            f.write(tail)
        log = make_log(root)
        r = log.open()
        got = read_all(log)
        for seq, data in got.items():
            assert records[seq] == data  # never anything that was not written
        assert set(range(1, durable + 1)) <= set(got)
        assert all(d.kind == "torn-tail" for d in r.damage)
        log.close()
        assert make_log(root).open().clean  # damage is repaired, not met again
    finally:
        shutil.rmtree(root, ignore_errors=True)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 7)), min_size=1,
                      max_size=5), segment=st.integers(min_value=0))
def test_flipped_bits_are_reported_and_never_served(
    written: Written, flips: list[tuple[int, int]], segment: int
) -> None:
    base, records, _, _ = written
    root = _copy(base)
    try:
        names = segment_files(root / "log")
        victim = root / "log" / names[segment % len(names)]
        data = bytearray(victim.read_bytes())
        for where, bit in flips:
            data[where % len(data)] ^= 1 << bit
        victim.write_bytes(bytes(data))
        log = make_log(root)
        r = log.open()
        got = read_all(log)
        for seq, payload in got.items():
            assert records[seq] == payload
        missing = set(records) - set(got)
        assert missing <= _lost(r, set(records))
        if missing:
            assert r.damage
        log.close()
        assert make_log(root).open().clean
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _lost(r: Recovery, everything: set[int]) -> set[int]:
    """Seqs a recovery report accounts for: lost ranges, or anything if a tail was cut or a
    whole segment (bad header) was quarantined, since their seqs cannot be told."""
    assert isinstance(r, Recovery)
    out: set[int] = set()
    for d in r.damage:
        if d.kind == "torn-tail" or not d.lost:
            return everything
        for a, b in d.lost:
            out.update(range(a, b + 1))
    return out
