"""The user-facing operations, one module per verb group: ``train``, ``verify`` (check, gradcheck),
``history`` (runs, restore, phases), ``data`` (load), ``predict`` (predict, export) and ``setup`` (init,
grants, demo); ``common`` and ``execute`` hold what several of them share; ``engines`` says what each
engine can do. ``sqlnet`` re-exports the public
names; the CLI calls nothing else."""
