"""Derive the blocking shells from the asyncio ones (the idea of unasync, as httpcore does it).

    .venv/bin/python scripts/unasync.py           # rewrite the generated files
    .venv/bin/python scripts/unasync.py --check   # exit 1 and show the difference if stale

Pairs (asyncio source -> generated blocking file) are in PAIRS. The source is rewritten token
by token: ``async def/for/with`` lose ``async``; ``await x`` becomes ``x``; the names in NAMES
are renamed (``__aenter__`` -> ``__enter__``, ``aclose`` -> ``close``, the asyncio waits ->
the blocking ones); in strings and comments the phrases in PHRASES are replaced, so that each
flavour's docstrings say what it does ("Wait until" -> "Block until").

Where the two shells really differ, the source marks a region, whole lines:

    # unasync: begin NAME  (free text: why it differs)
    ... asyncio code ...
    # unasync: end NAME

The generated file has, in its place, its own hand-written region of the same NAME, kept as it
is, or nothing if it has none (asyncio-only code). Everything else in the generated file comes
from the source: edit the source, then run this script. It refuses asyncio code left outside
a region, a region without its end, and a hand-written region the source does not place.
"""

from __future__ import annotations

import argparse
import difflib
import io
import re
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = "scripts/unasync.py"

PAIRS = [
    ("peermq/aio.py", "peermq/sockets.py"),
    ("peermq/_spooled_aio.py", "peermq/_spooled_sync.py"),
]
"""(asyncio source, generated blocking file), relative to the project root."""

NAMES = {
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "__aiter__": "__iter__",
    "__anext__": "__next__",
    "aclose": "close",
    "AsyncIterator": "Iterator",
    "AsyncIterable": "Iterable",
    "StopAsyncIteration": "StopIteration",
    "_spooled_aio": "_spooled_sync",
    # the asyncio waits (aio.py, _spooled_aio.py) -> the blocking ones (_base.py, _spool_*.py)
    "_ready": "_poll",
    "_ready_input": "_wait_input",
    "_until": "_wait_for",
}
"""Names renamed wherever they stand as a name (not in strings)."""

PHRASES = [
    ("Wait until", "Block until"),
    (" (asyncio)", ""),
    (" (plain or async)", ""),
    ("``aio.", "``"),
]
"""Replaced in strings and comments, in this order."""

_MARKER = re.compile(r"^[ \t]*# unasync: (begin|end) ([A-Za-z_][\w-]*)\b")
_ASYNC_NAMES = frozenset({"async", "await", "asyncio"})
_KEYWORDS_AFTER_ASYNC = frozenset({"def", "for", "with"})


class GenerateError(Exception):
    """The source (or the generated file's hand-written regions) cannot be turned into a file."""


def header(source: str) -> str:
    return (f"# generated from {source} by {SCRIPT}; do not edit\n"
            "# (but for the hand-written regions between '# unasync: begin' and 'end')\n")


def _regions(lines: list[str], where: str) -> dict[str, tuple[int, int]]:
    """Each region's name -> (index of its begin line, index of its end line)."""
    found: dict[str, tuple[int, int]] = {}
    open_name: str | None = None
    start = 0
    for i, line in enumerate(lines):
        m = _MARKER.match(line)
        if m is None:
            continue
        what, name = m.groups()
        if what == "begin":
            if open_name is not None:
                raise GenerateError(f"{where}:{i + 1}: region {name!r} begins inside region "
                                    f"{open_name!r}; regions do not nest")
            if name in found:
                raise GenerateError(f"{where}:{i + 1}: a second region named {name!r}")
            open_name, start = name, i
        else:
            if name != open_name:
                raise GenerateError(f"{where}:{i + 1}: 'unasync: end {name}' but the open "
                                    f"region is {open_name!r}")
            found[name] = (start, i)
            open_name = None
    if open_name is not None:
        raise GenerateError(f"{where}:{start + 1}: region {open_name!r} has no "
                            f"'# unasync: end {open_name}'")
    return found


def _rewrite(source: str, where: str) -> str:
    """The token rewriting: same lines, asyncio words turned into blocking ones."""
    starts = [0]
    for line in io.StringIO(source):  # lines as tokenize reads them: "\n" ends one, nothing else
        starts.append(starts[-1] + len(line))

    def offset(pos: tuple[int, int]) -> int:
        return starts[pos[0] - 1] + pos[1]

    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError) as exc:
        raise GenerateError(f"{where}: cannot tokenize: {exc}") from exc
    edits: list[tuple[int, int, str]] = []
    for i, tok in enumerate(tokens):
        a, b = offset(tok.start), offset(tok.end)
        nxt = tokens[i + 1] if i + 1 < len(tokens) else tok
        if tok.type == tokenize.NAME:
            if tok.string == "await" or (
                tok.string == "async" and nxt.string in _KEYWORDS_AFTER_ASYNC
            ):
                edits.append((a, offset(nxt.start), ""))  # the word and the space after it
            elif tok.string in NAMES:
                edits.append((a, b, NAMES[tok.string]))
        elif tok.type in (tokenize.STRING, tokenize.COMMENT) and not _MARKER.match(tok.line):
            text = source[a:b]
            for old, new in PHRASES:
                text = text.replace(old, new)
            if text != source[a:b]:
                edits.append((a, b, text))
    out = source
    for a, b, text in reversed(edits):
        out = out[:a] + text + out[b:]
    return out


def _check_blocking(lines: list[str], skip: set[int], where: str) -> None:
    """No asyncio word may be left outside the regions."""
    text = "".join(lines)
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        row = tok.start[0] - 1
        if tok.type == tokenize.NAME and tok.string in _ASYNC_NAMES and row not in skip:
            raise GenerateError(
                f"{where}:{row + 1}: {tok.string!r} is left in the blocking code: rewrite it, "
                "or mark the lines as a region ('# unasync: begin NAME' ... 'end NAME')"
            )


def generate(source: str, current: str, source_name: str, target_name: str) -> str:
    """The blocking file for asyncio ``source``, keeping ``current``'s hand-written regions."""
    src_lines = _rewrite(source, source_name).splitlines(keepends=True)
    cur_lines = current.splitlines(keepends=True)
    src_regions = _regions(src_lines, source_name)
    cur_regions = _regions(cur_lines, target_name)
    for name, (begin, _) in cur_regions.items():
        if name not in src_regions:
            raise GenerateError(
                f"{target_name}:{begin + 1}: hand-written region {name!r} has no place in "
                f"{source_name}: mark it there with '# unasync: begin {name}' and 'end {name}'"
            )
    inside = {i for b, e in src_regions.values() for i in range(b, e + 1)}
    _check_blocking(src_lines, inside, source_name)
    out = [header(source_name)]
    at = 0
    for name, (begin, end) in sorted(src_regions.items(), key=lambda item: item[1]):
        out += src_lines[at:begin]
        at = end + 1
        if name in cur_regions:
            b, e = cur_regions[name]
            out += cur_lines[b:e + 1]
        elif out[-1].strip() == "":  # dropped: no second run of blank lines where it was
            while at < len(src_lines) and src_lines[at].strip() == "":
                at += 1
    out += src_lines[at:]
    return "".join(out)


def generate_pair(source: str, target: str, root: Path = ROOT) -> str:
    """The text ``target`` should have now (paths relative to ``root``)."""
    current = (root / target).read_text(encoding="utf-8") if (root / target).exists() else ""
    return generate((root / source).read_text(encoding="utf-8"), current, source, target)


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--check", action="store_true",
                    help="change nothing; exit 1 if a generated file is not up to date")
    args = ap.parse_args(argv)
    stale = 0
    for source, target in PAIRS:
        try:
            text = generate_pair(source, target, root)
        except GenerateError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        path = root / target
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        if text == old:
            continue
        if args.check:
            stale += 1
            sys.stdout.writelines(difflib.unified_diff(
                old.splitlines(keepends=True), text.splitlines(keepends=True),
                f"{target} (committed)", f"{target} (generated from {source})"))
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {target} (from {source})")
    if stale:
        print(f"{stale} generated file(s) out of date: run .venv/bin/python {SCRIPT}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
