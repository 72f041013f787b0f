"""Airflow glue for teamsops: the ``msteams`` hook, provider metadata and the defaults every DAG shares.

Everything that does not need Airflow lives in the ``teamsops`` package (``include/teamsops``).
"""
