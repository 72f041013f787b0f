"""The scripts airflow-init runs (docker/): the UI passwords file and the audit database, against the real things.

The passwords file is read back with Airflow's own simple auth manager; the audit database is created on a real
PostgreSQL server (the session's throw-away cluster, see tests/conftest.py) and checked in its catalogue.
"""

from __future__ import annotations

import importlib.util
import json
import stat
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"teamsops_docker_{name}", REPO / "docker" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


auth = load_script("auth_passwords")
audit = load_script("init_audit_db")

USERS = "admin:admin,itops:op,itops2:op,auditor:viewer"
GOOD = {"admin": "a" * 16, "itops": "b" * 16, "itops2": "c" * 16, "auditor": "d" * 16}


# ------------------------------------------------------------------------------------------------ UI passwords
def test_passwords_cover_every_configured_user() -> None:
    assert auth.passwords_for(USERS, json.dumps({**GOOD, "stranger": "x" * 20})) == GOOD


@pytest.mark.parametrize(
    ("passwords", "message"),
    [
        ("", "AIRFLOW_SIMPLE_AUTH_PASSWORDS is not set"),
        ("{admin: secret}", "is not JSON"),
        ('["admin"]', "must be a JSON object"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "itops2"}), "no password for itops2"),
        (json.dumps({**GOOD, "auditor": "short"}), "password of auditor is shorter than 12"),
    ],
)
def test_unusable_passwords_are_refused_with_the_fix(passwords: str, message: str) -> None:
    with pytest.raises(auth.AuthConfigError, match=message):
        auth.passwords_for(USERS, passwords)


def test_passwords_file_is_what_airflow_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """main() writes the file Airflow's simple auth manager uses, private to its owner, with no user left to invent."""
    import os

    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    target = tmp_path / "auth" / "passwords.json"
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", USERS)
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(target))
    monkeypatch.setenv("AIRFLOW_SIMPLE_AUTH_PASSWORDS", json.dumps(GOOD))
    monkeypatch.setenv("AIRFLOW_UID", str(os.getuid()))
    assert auth.main() == 0
    assert SimpleAuthManager.get_passwords() == GOOD
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert {u.username for u in SimpleAuthManager.get_users()} == set(GOOD)
    assert "aaaa" not in capsys.readouterr().out, "passwords must not reach the init log"


def test_missing_password_fails_the_init(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    target = tmp_path / "passwords.json"
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", USERS)
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(target))
    monkeypatch.setenv("AIRFLOW_SIMPLE_AUTH_PASSWORDS", json.dumps({"admin": "a" * 16}))
    assert auth.main() == 1
    assert "no password for itops, itops2, auditor" in capsys.readouterr().err
    assert not target.exists()


# ------------------------------------------------------------------------------------------------ audit database
def _catalog(admin_url: str, sql: str, *params: object) -> list[tuple]:
    import psycopg2
    from sqlalchemy.engine import make_url

    url = make_url(admin_url)
    conn = psycopg2.connect(host=url.host, port=url.port, user=url.username, dbname=url.database)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def _audit_env(admin_url: str, **overrides: object) -> dict[str, str]:
    from sqlalchemy.engine import make_url

    url = make_url(admin_url)
    conn = {"conn_type": "postgres", "host": url.host, "port": url.port, "schema": "msteams_audit_t",
            "login": "msteams_audit_t", "password": "first-password-123", **overrides}  # fmt: skip
    return {audit.METADATA_ENV: admin_url, audit.AUDIT_ENV: json.dumps(conn)}


def test_audit_database_is_created_once_and_owned_by_its_role(postgres_url: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    env = _audit_env(postgres_url)
    assert audit.main(env) == 0
    assert "database msteams_audit_t created (owner msteams_audit_t)" in capsys.readouterr().out
    owner = _catalog(postgres_url, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                     "msteams_audit_t")  # fmt: skip
    assert owner == [("msteams_audit_t",)]
    assert _catalog(postgres_url, "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", "msteams_audit_t") == [(True,)]
    # Other roles may not connect to it.
    assert _catalog(postgres_url, "SELECT has_database_privilege('public', 'msteams_audit_t', 'CONNECT')") == [(False,)]
    first_hash = _catalog(postgres_url, "SELECT rolpassword FROM pg_authid WHERE rolname = %s", "msteams_audit_t")

    # Every init runs it again: nothing is created twice, and a new password in .env reaches the role.
    assert audit.main(_audit_env(postgres_url, password="second-password-456")) == 0
    assert "database msteams_audit_t exists" in capsys.readouterr().out
    assert _catalog(postgres_url, "SELECT count(*) FROM pg_database WHERE datname = %s", "msteams_audit_t") == [(1,)]
    assert _catalog(postgres_url, "SELECT rolpassword FROM pg_authid WHERE rolname = %s", "msteams_audit_t") \
        != first_hash  # fmt: skip


def test_audit_database_elsewhere_is_left_alone(postgres_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert audit.main(_audit_env(postgres_url, host="audit.example.internal", schema="msteams_audit_elsewhere")) == 0
    assert "create it there yourself" in capsys.readouterr().out
    assert _catalog(postgres_url, "SELECT count(*) FROM pg_database WHERE datname = 'msteams_audit_elsewhere'") \
        == [(0,)]  # fmt: skip
    assert audit.main(_audit_env(postgres_url, conn_type="sqlite", host="/tmp/audit.db")) == 0
    assert "is not postgres" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "AIRFLOW_CONN_MSTEAMS_AUDIT is not set"),
        ({"AIRFLOW_CONN_MSTEAMS_AUDIT": '{"conn_type": "postgres", "host": "postgres", "schema": "a", '
                                        '"login": "msteams_audit"}'}, "has no password for 'msteams_audit'"),
        ({"AIRFLOW_CONN_MSTEAMS_AUDIT": '{"conn_type": "postgres", "host": "postgres", "login": "x", '
                                        '"password": "p"}'}, "needs a database name"),
    ],
)
def test_unusable_audit_connection_fails_the_init(env: dict[str, str], message: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    env = {audit.METADATA_ENV: "postgresql+psycopg2://airflow:pw@postgres/airflow", **env}
    assert audit.main(env) == 1
    assert message in capsys.readouterr().err
