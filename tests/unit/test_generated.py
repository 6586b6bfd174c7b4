"""The blocking shells are generated from the asyncio ones (scripts/unasync.py): the committed
files must be what the script makes now, and the script must refuse what it cannot turn."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("peermq_unasync", ROOT / "scripts/unasync.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses and the like look modules up
    spec.loader.exec_module(module)
    return module


unasync = _load()


@pytest.mark.parametrize(("source", "target"), unasync.PAIRS)
def test_generated_file_is_up_to_date(source: str, target: str) -> None:
    committed = (ROOT / target).read_text(encoding="utf-8")
    generated = unasync.generate_pair(source, target, ROOT)
    assert committed == generated, (
        f"{target} is not what {source} generates: edit {source} (or the hand-written "
        f"regions of {target}), then run: .venv/bin/python scripts/unasync.py"
    )


def test_generated_files_carry_the_header() -> None:
    for source, target in unasync.PAIRS:
        text = (ROOT / target).read_text(encoding="utf-8")
        assert text.startswith(f"# generated from {source} by scripts/unasync.py; do not edit")


def _gen(source: str, current: str = "") -> str:
    result: str = unasync.generate(source, current, "a.py", "s.py")
    return result


def _body(text: str) -> str:
    return text.split("\n", 2)[2]  # without the two header lines


def test_rewrites_async_words_names_and_phrases() -> None:
    source = (
        "class C(_Closing):\n"
        "    async def __aenter__(self) -> C:\n"
        '        """Wait until ready (asyncio)."""\n'
        "        async with self.lock:\n"
        "            async for x in self._messages():  # Wait until one comes\n"
        "                await self._ready(x)\n"
        "        await self.aclose()\n"
        "        return self\n"
    )
    assert _body(_gen(source)) == (
        "class C(_Closing):\n"
        "    def __enter__(self) -> C:\n"
        '        """Block until ready."""\n'
        "        with self.lock:\n"
        "            for x in self._messages():  # Block until one comes\n"
        "                self._poll(x)\n"
        "        self.close()\n"
        "        return self\n"
    )


def test_a_name_inside_a_string_or_a_longer_name_is_left_alone() -> None:
    source = 'x = "await aclose _ready"\nawaited = aclose_all\n'
    assert _body(_gen(source)) == source


def test_a_form_feed_or_line_separator_in_a_string_shifts_no_edit() -> None:
    # str.splitlines also breaks at these; tokenize does not: offsets must follow tokenize
    source = 'x = "a\x0cb\u2028c"\nasync def f() -> None:\n    await g()\n'
    assert _body(_gen(source)) == 'x = "a\x0cb\u2028c"\ndef f() -> None:\n    g()\n'


def test_regions_take_the_hand_written_text_or_vanish() -> None:
    source = (
        "a = 1\n"
        "# unasync: begin wait  (asyncio only)\n"
        "import asyncio\n"
        "# unasync: end wait\n"
        "\n"
        "# unasync: begin gone\n"
        "b = asyncio.sleep\n"
        "# unasync: end gone\n"
        "\n"
        "c = 3\n"
    )
    current = (
        "# unasync: begin wait  (hand-written)\n"
        "import time\n"
        "# unasync: end wait\n"
    )
    assert _body(_gen(source, current)) == (
        "a = 1\n"
        "# unasync: begin wait  (hand-written)\n"
        "import time\n"
        "# unasync: end wait\n"
        "\n"
        "c = 3\n"
    )


@pytest.mark.parametrize(
    ("source", "current", "error"),
    [
        # asyncio code outside a region: refused, with the line
        ("x = 1\nawait_it = asyncio.sleep\n", "", "a.py:2: 'asyncio' is left"),
        # a region without its end
        ("# unasync: begin r\nx = 1\n", "", "a.py:1: region 'r' has no '# unasync: end r'"),
        # an end that closes another region
        ("# unasync: begin r\n# unasync: end q\n", "", "a.py:2: 'unasync: end q'"),
        # regions do not nest
        ("# unasync: begin r\n# unasync: begin q\n", "", "a.py:2: region 'q' begins inside"),
        # one name, two regions
        ("# unasync: begin r\n# unasync: end r\n# unasync: begin r\n# unasync: end r\n", "",
         "a.py:3: a second region named 'r'"),
        # a hand-written region the source does not place
        ("x = 1\n", "# unasync: begin r\ny = 2\n# unasync: end r\n",
         "s.py:1: hand-written region 'r' has no place in a.py"),
        # not Python
        ('x = """\n', "", "a.py: cannot tokenize"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(source: str, current: str, error: str) -> None:
    with pytest.raises(unasync.GenerateError, match="^" + re.escape(error)):
        _gen(source, current)


def test_check_mode_names_the_command_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for source, target in unasync.PAIRS:
        for rel in (source, target):
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text((ROOT / rel).read_text(encoding="utf-8"),
                                        encoding="utf-8")
    stale = tmp_path / unasync.PAIRS[0][1]
    stale.write_text(stale.read_text(encoding="utf-8") + "x = 1\n", encoding="utf-8")
    before = stale.read_text(encoding="utf-8")
    assert unasync.main(["--check"], tmp_path) == 1
    out = capsys.readouterr()
    assert "run .venv/bin/python scripts/unasync.py" in out.err
    assert "+x = 1" not in out.out and "-x = 1" in out.out  # the diff shows what goes
    assert stale.read_text(encoding="utf-8") == before
    assert unasync.main([], tmp_path) == 0  # regenerating fixes it
    assert unasync.main(["--check"], tmp_path) == 0
