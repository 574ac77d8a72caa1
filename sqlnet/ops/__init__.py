"""The user-facing operations, one module per verb group: ``train``, ``verify`` (check, gradcheck),
``history`` (runs, restore, phases), ``data`` (load, predict, export) and ``setup`` (init, grants,
demo); ``common`` and ``execute`` hold what several of them share. ``sqlnet`` re-exports the public
names; the CLI calls nothing else."""
