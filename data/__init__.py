"""Package data of lmpipe (installed as ``lmpipe.data``): the corpus registry ``corpora.toml``
and the two small corpora of the default experiment, embedded under ``corpora/`` so that the
main job runs with no network (see ``corpora/PROVENANCE.md`` for where they come from).

A run's own files never land here: the warehouse, caches and reports live under ``--home``.
"""
