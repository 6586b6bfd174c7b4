"""``peermq demo``: topology (who and how wired), child (one process), supervisor (all of
them), view (tables and lines) and command (the click command)."""
