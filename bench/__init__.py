"""peermq against raw pyzmq + msgpack, side by side: ``python -m bench.run``."""
