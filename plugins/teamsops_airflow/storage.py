"""Where the sync writes: the data root, an Airflow ``ObjectStoragePath`` taken from ``MSTEAMS_DATA_ROOT``.

* unset: ``file://$AIRFLOW_HOME/msteams-data`` (fine for one machine or a shared volume);
* ``file:///abs/path`` or a plain absolute path: a local or mounted folder;
* ``abfs://<conn_id>@<container>/<path>``: ADLS Gen2 / Blob Storage through the Microsoft Azure provider (adlfs),
  authenticated by the Airflow connection ``<conn_id>`` (type ``wasb`` or ``adls``: account key, SAS, service
  principal, managed identity or ``connection_string``); ``abfss://`` works the same way.
  Any other scheme Airflow's object storage knows (``s3://conn@bucket/...``, ``gs://``) works too when its provider is
  installed; only ``file`` and ``abfs`` are tested here.

The tenant GUID partitions the root (``{root}/{tenant_id}/...``), so every connected tenant can share one root.
Reading the environment is cheap; nothing here resolves a connection or opens a socket until a task calls it.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

DATA_ROOT_ENV = "MSTEAMS_DATA_ROOT"
_AZURE_SCHEMES = ("abfs", "abfss")


class DataRootError(ValueError):
    """``MSTEAMS_DATA_ROOT`` cannot be used; the message says how to write it."""


def airflow_home() -> str:
    """``$AIRFLOW_HOME`` the way Airflow resolves it (default ``~/airflow``)."""
    return os.path.expanduser(os.environ.get("AIRFLOW_HOME") or "~/airflow")


def data_root_url(value: str | None = None) -> str:
    """The data root as a URL, validated (``value`` defaults to ``$MSTEAMS_DATA_ROOT``)."""
    raw = (value if value is not None else os.environ.get(DATA_ROOT_ENV, "")).strip()
    if not raw:
        return "file://" + os.path.join(airflow_home(), "msteams-data")
    if raw.startswith("/"):
        return "file://" + raw.rstrip("/")
    parts = urlsplit(raw)
    if not parts.scheme:
        raise DataRootError(
            f"{DATA_ROOT_ENV}={raw!r} is neither an absolute path nor a URL: use /abs/path, file:///abs/path or "
            "abfs://<wasb_conn_id>@<container>/<path>."
        )
    if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
        raise DataRootError(f"{DATA_ROOT_ENV}={raw!r}: a file URL needs three slashes (file:///abs/path).")
    if parts.scheme in _AZURE_SCHEMES:
        _check_azure(raw, parts.netloc)
    return raw.rstrip("/")


def _check_azure(raw: str, netloc: str) -> None:
    """Airflow picks the storage credentials from the connection id before ``@``; without it adlfs would fall back
    to anonymous access and fail later with an opaque 403, so refuse early with the expected form."""
    conn_id, sep, container = netloc.partition("@")
    if not sep or not conn_id or not container:
        raise DataRootError(
            f"{DATA_ROOT_ENV}={raw!r} names no Airflow connection: write abfs://<wasb_conn_id>@<container>/<path> "
            "(the connection, type wasb or adls, holds the storage account and its credentials)."
        )
    if "." in container:
        raise DataRootError(
            f"{DATA_ROOT_ENV}={raw!r}: put the container after '@' (abfs://{conn_id}@<container>/<path>); the storage "
            "account comes from the connection, not from a host name."
        )


def data_root(value: str | None = None) -> ObjectStoragePath:
    """The data root as an ``ObjectStoragePath`` (see the module docstring for the accepted forms)."""
    from airflow.sdk import ObjectStoragePath

    url = data_root_url(value)
    if urlsplit(url).scheme in _AZURE_SCHEMES:
        quiet_azure_logging()
    return ObjectStoragePath(url)


def prepare_root(root: ObjectStoragePath) -> None:
    """Make sure the run can write under ``root``: create a local folder, check that a blob container exists.

    Containers are not created on the fly: that needs account-level rights the sync should not hold, and a typo in
    the container name would silently start a second data lake. Blob storage has no real folders, so ``mkdir`` there
    is a no-op and the first write would fail deep inside a task with ``ContainerNotFound``; checking here fails the
    run's first task with the fix instead.
    """
    from airflow.sdk import ObjectStoragePath

    if root.protocol in _AZURE_SCHEMES:
        parts = urlsplit(str(root))
        conn_id, _, container = parts.netloc.partition("@")
        if not ObjectStoragePath(f"{parts.scheme}://{conn_id}@{container}/").exists():
            raise DataRootError(
                f"The blob container {container!r} does not exist in the storage account of connection {conn_id!r} "
                f"({DATA_ROOT_ENV}={str(root)!r}): create it (Azure portal > Storage account > Containers) or fix "
                f"{DATA_ROOT_ENV}."
            )
        return
    root.mkdir(parents=True, exist_ok=True)


def quiet_azure_logging() -> None:
    """The Azure SDK logs every HTTP request and response with headers at INFO; one sync makes thousands of storage
    calls, which would bury the sync's own progress lines in the task log."""
    logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
    logging.getLogger("azure.identity").setLevel(logging.WARNING)
