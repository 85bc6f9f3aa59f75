"""The steps of an experiment as plain functions over files, each in its own module:

- ``ingest``: a corpus -> token ids and vocabulary in the warehouse;
- ``counts``: n-gram counts of the training split;
- ``ngram``: estimate one n-gram model and score it (fit-and-score);
- ``neural``: train one neural model and score it (train-and-score);
- ``record``: a run's rows in the warehouse, committed last;
- ``generate``: continue a prefix with a stored model;
- ``preflight``: check a whole experiment before any work;
- ``jobs``: ``lmpipe ngram`` and ``lmpipe train`` composed from the steps.

The command line's direct path calls them; the Prefect tasks (``lmpipe.tasks``) wrap them one
to one. ``home`` (where everything lives) and ``cache`` (compute once per content key) are what
they share.
"""
