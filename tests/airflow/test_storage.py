"""The sync's data root: ``MSTEAMS_DATA_ROOT`` parsing, and ``abfs://`` (ADLS through the Azure provider) against
Azurite, the Azure Storage emulator, with the storage connection taken from an ``AIRFLOW_CONN_*`` variable."""

from __future__ import annotations

import json

import pytest
import storage_fixtures  # tests/storage_fixtures.py (tests/ is on sys.path, see conftest.py)


storage_fixtures.load_into(globals())  # the azurite / azure_root fixtures


# ------------------------------------------------------------------------------------------ MSTEAMS_DATA_ROOT
def test_default_root_is_under_airflow_home(monkeypatch, tmp_path):
    from teamsops_airflow.storage import data_root, data_root_url

    monkeypatch.delenv("MSTEAMS_DATA_ROOT", raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert data_root_url() == f"file://{tmp_path}/msteams-data"
    root = data_root()
    assert str(root) == f"file://{tmp_path}/msteams-data"
    assert root.protocol == "file"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/srv/lake/", "file:///srv/lake"),
        ("file:///srv/lake", "file:///srv/lake"),
        ("abfs://lake_conn@container/teams/", "abfs://lake_conn@container/teams"),
        ("abfss://lake_conn@container", "abfss://lake_conn@container"),
    ],
)
def test_accepted_roots(value, expected):
    from teamsops_airflow.storage import data_root_url

    assert data_root_url(value) == expected


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("relative/path", "neither an absolute path nor a URL"),
        ("file://srv/lake", "three slashes"),
        ("abfs://container/path", "names no Airflow connection"),
        ("abfs://@container/path", "names no Airflow connection"),
        ("abfs://container@account.dfs.core.windows.net/path", "the storage account comes from the connection"),
    ],
)
def test_refused_roots_say_how_to_write_them(value, says):
    from teamsops_airflow.storage import DataRootError, data_root_url

    with pytest.raises(DataRootError, match="MSTEAMS_DATA_ROOT") as err:
        data_root_url(value)
    assert says in str(err.value)


def test_prepare_root_creates_a_local_folder(tmp_path):
    from teamsops_airflow.storage import data_root, prepare_root

    root = data_root(str(tmp_path / "a" / "b"))
    prepare_root(root)
    assert (tmp_path / "a" / "b").is_dir()


# ------------------------------------------------------------------------------------------ abfs:// on Azurite
def _write_parquet_streaming(path, shard: int, batches: int, rows_per_batch: int) -> None:
    """What the engine does: one ParquetWriter on an opened object, a row group per batch."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.string()), ("n", pa.int64())])
    with path.open("wb") as handle, pq.ParquetWriter(handle, schema) as writer:
        for b in range(batches):
            ids = [f"id-{shard}-{b}-{i}" for i in range(rows_per_batch)]
            writer.write_table(pa.table({"id": ids, "n": list(range(rows_per_batch))}, schema=schema))


def test_abfs_root_writes_reads_and_lists_parquet(azure_root):
    import pandas as pd
    import pyarrow.parquet as pq

    from teamsops_airflow.storage import data_root, prepare_root

    root = data_root(azure_root)
    prepare_root(root)
    assert str(root) == azure_root  # the connection id survives in the URL written to manifests

    run_dir = root / "tenant" / "users" / "run_id=r1"
    for shard in range(2):
        _write_parquet_streaming(run_dir / f"part-{shard:05d}.parquet", shard, batches=3, rows_per_batch=1000)

    listed = sorted(p.name for p in run_dir.iterdir())
    assert listed == ["part-00000.parquet", "part-00001.parquet"]
    assert all(str(p).startswith(azure_root) for p in run_dir.iterdir())
    with (run_dir / "part-00001.parquet").open("rb") as handle:
        meta = pq.ParquetFile(handle).metadata
        assert (meta.num_rows, meta.num_row_groups) == (3000, 3)

    # A run directory is one table for pandas, through the root's filesystem (credentials from the connection).
    frame = pd.read_parquet(run_dir.path, filesystem=root.fs)
    assert len(frame) == 6000 and frame["id"].is_unique

    # A second process sees the same objects given only the URL (what a downstream task gets from XCom).
    from airflow.sdk import ObjectStoragePath

    again = ObjectStoragePath(str(run_dir / "part-00000.parquet"))
    assert again.exists() and again.stat()["size"] > 0


def test_abfs_rename_replaces_an_object_whole(azure_root):
    """latest.json is published by writing a temporary object and renaming it over the old one."""
    from teamsops_airflow.storage import data_root

    root = data_root(azure_root)
    latest = root / "tenant" / "latest.json"
    latest.write_text(json.dumps({"run_id": "r1"}))
    staged = root / "tenant" / "latest.json.tmp"
    staged.write_text(json.dumps({"run_id": "r2"}))
    staged.rename(latest)
    assert json.loads(latest.read_text()) == {"run_id": "r2"}
    assert not staged.exists()


def test_an_adls_connection_works_too(azurite, monkeypatch):
    """The Azure provider reads abfs:// credentials from either connection type (``adls`` = ADLS Gen2)."""
    from teamsops_airflow.storage import data_root, prepare_root

    conn_id = f"{azurite.conn_id}_adls"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(azurite.connection("adls")))
    azurite.create_container("adls-lake")
    root = data_root(f"abfs://{conn_id}@adls-lake/msteams")
    prepare_root(root)
    _write_parquet_streaming(root / "t" / "part-00000.parquet", 0, batches=1, rows_per_batch=10)
    assert [p.name for p in (root / "t").iterdir()] == ["part-00000.parquet"]


def test_missing_container_fails_with_the_fix(azurite, monkeypatch):
    from teamsops_airflow.storage import DataRootError, data_root, prepare_root

    monkeypatch.setenv(f"AIRFLOW_CONN_{azurite.conn_id.upper()}", json.dumps(azurite.connection()))
    with pytest.raises(DataRootError, match="'no-such-container' does not exist.*create it"):
        prepare_root(data_root(f"abfs://{azurite.conn_id}@no-such-container/msteams"))
