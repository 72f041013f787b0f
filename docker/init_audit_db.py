"""Create the audit database that the ``msteams_audit`` connection names, on the deployment's own PostgreSQL server.

Run by ``airflow-init`` in docker-compose.yaml on every start, so it must be idempotent: it creates the login role
and the database when they are missing, and sets the role's password to the connection's (changing the password in
``.env`` and restarting rotates it). The database is its own, next to Airflow's metadata database on the same
server: the action DAGs' audit log then outlives ``airflow db reset`` and can be granted, backed up and retained on
its own terms.

Why not a script in ``/docker-entrypoint-initdb.d``: PostgreSQL runs those only when the data volume is first
created, so an existing deployment that gains the audit log would never get its database.

The connection is read the way the workers read it (``AIRFLOW_CONN_MSTEAMS_AUDIT``, JSON or URI, parsed by Airflow);
the server is reached with the metadata database's URL (``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``), whose user is the
server's superuser in the compose set-up. A connection to another server, or of another type, is left alone.

Exit status: 0 done or nothing to do, 1 configuration error (the message says what to set).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

AUDIT_CONN_ID = "msteams_audit"
AUDIT_ENV = f"AIRFLOW_CONN_{AUDIT_CONN_ID.upper()}"
METADATA_ENV = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"


class AuditDbConfigError(RuntimeError):
    """The audit connection or the metadata database URL cannot be used; the message names the variable."""


@dataclass(frozen=True)
class AuditTarget:
    """What to create: database ``database`` owned by ``role`` (with ``password``) on ``host:port``."""

    host: str
    port: int
    database: str
    role: str
    password: str | None


def audit_target(environ: dict[str, str]) -> AuditTarget | None:
    """The audit database to create, or None when it is not a PostgreSQL database on the metadata DB's server."""
    from airflow.secrets.environment_variables import EnvironmentVariablesBackend
    from sqlalchemy.engine import make_url

    if not environ.get(AUDIT_ENV, "").strip():
        raise AuditDbConfigError(
            f"{AUDIT_ENV} is not set: without it every worker keeps its own SQLite audit log inside its container. "
            "Set it in .env to the msteams_audit database on the compose PostgreSQL server (see .env.example).")
    saved = os.environ.get(AUDIT_ENV)
    os.environ[AUDIT_ENV] = environ[AUDIT_ENV]  # the backend reads os.environ; parse exactly as the workers will
    try:
        conn = EnvironmentVariablesBackend().get_connection(AUDIT_CONN_ID)
    except Exception as err:  # noqa: BLE001 - any parse error is a configuration error here
        raise AuditDbConfigError(f"{AUDIT_ENV} cannot be parsed as an Airflow connection (JSON or URI): {err}") from err
    finally:
        if saved is None:
            os.environ.pop(AUDIT_ENV, None)
        else:
            os.environ[AUDIT_ENV] = saved
    if (conn.conn_type or "").lower() not in ("postgres", "postgresql"):
        print(f"{AUDIT_CONN_ID}: connection type {conn.conn_type!r} is not postgres; nothing to create here.")
        return None
    try:
        metadata = make_url(environ.get(METADATA_ENV, ""))
    except Exception as err:  # noqa: BLE001
        raise AuditDbConfigError(f"{METADATA_ENV} is not a database URL: {err}") from err
    if not metadata.drivername.startswith("postgresql"):
        raise AuditDbConfigError(f"{METADATA_ENV} is not a PostgreSQL URL; the audit database lives on that server.")
    same_server = (conn.host or "") == (metadata.host or "") and int(conn.port or 5432) == int(metadata.port or 5432)
    if not same_server:
        print(f"{AUDIT_CONN_ID}: database on {conn.host}:{conn.port or 5432}, not on the metadata database's server "
              f"({metadata.host}:{metadata.port or 5432}); create it there yourself.")
        return None
    if not conn.schema or not conn.login:
        raise AuditDbConfigError(
            f"{AUDIT_ENV} needs a database name (schema) and a login, e.g. "
            '{"conn_type": "postgres", "host": "postgres", "schema": "msteams_audit", "login": "msteams_audit", '
            '"password": "..."}.')
    if not conn.password and conn.login != metadata.username:
        raise AuditDbConfigError(
            f"{AUDIT_ENV} has no password for {conn.login!r}: PostgreSQL refuses password-less logins over the "
            "network, so set one (e.g. `openssl rand -hex 24`).")
    return AuditTarget(conn.host, int(conn.port or 5432), conn.schema, conn.login, conn.password or None)


def ensure_audit_database(admin_url: str, target: AuditTarget) -> list[str]:
    """Create the role and the database when missing; return what was done (for the init log)."""
    import psycopg2
    from psycopg2 import sql
    from sqlalchemy.engine import make_url

    url = make_url(admin_url)
    done: list[str] = []
    admin = psycopg2.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password,
                             dbname=url.database or "postgres")  # fmt: skip
    admin.autocommit = True  # CREATE DATABASE refuses to run inside a transaction
    try:
        with admin.cursor() as cur:
            role = sql.Identifier(target.role)
            if target.role != url.username:
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (target.role,))
                verb = "ALTER" if cur.fetchone() else "CREATE"
                if target.password:
                    cur.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD %s").format(role), (target.password,))
                else:
                    cur.execute(sql.SQL(verb + " ROLE {} LOGIN").format(role))
                done.append(f"role {target.role} {'created' if verb == 'CREATE' else 'up to date'}")
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target.database,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(target.database), role))
                # Only its owner (and superusers) may connect: other roles on this server have no business there.
                cur.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC")
                            .format(sql.Identifier(target.database)))  # fmt: skip
                done.append(f"database {target.database} created (owner {target.role})")
            else:
                done.append(f"database {target.database} exists")
    finally:
        admin.close()
    return done


def main(environ: dict[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    try:
        target = audit_target(env)
    except AuditDbConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if target is not None:
        for line in ensure_audit_database(env[METADATA_ENV], target):
            print(f"{AUDIT_CONN_ID}: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
