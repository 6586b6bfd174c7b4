"""The README's quickstart runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_quickstart_runs() -> None:
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert block, "README has no python block"
    out = subprocess.run([sys.executable, "-c", block.group(1)], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    assert out.splitlines() == ["orders.created {'id': 7} {'region': 'eu'} 1", "0"]


def test_readme_has_exactly_the_two_setup_commands() -> None:
    setup = README.read_text().split("## Set up", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^sh (\S+)", setup, re.M)
    assert commands == ["scripts/demo.sh", "scripts/test.sh"]
    for cmd in commands:
        assert (README.parent / cmd).is_file()
    ci = (README.parent / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci
