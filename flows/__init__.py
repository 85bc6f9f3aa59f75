"""Prefect flows composing the tasks, the deployments and the ``lmpipe`` command line."""
