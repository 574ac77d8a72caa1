"""What a network is, with no database: its shape and functions (``network``, ``functions``), how it
learns (``optimizers``, ``phases``), how it starts (``initialize``), and the pure-Python reference
that proves every SQL result (``reference``). Imports nothing of sqlnet but ``sqlnet.errors``."""
