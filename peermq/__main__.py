"""``python -m peermq``: the same as the ``peermq`` command."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main()
