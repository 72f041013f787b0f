"""Write the simple auth manager's passwords file from ``AIRFLOW_SIMPLE_AUTH_PASSWORDS`` (run by ``airflow-init``).

Airflow's simple auth manager keeps ``{"user": "password"}`` in a JSON file and, for every configured user
(``[core] simple_auth_manager_users``) missing from it, generates a random password and prints it to the API
server's log. In a deployment that means passwords nobody chose, in logs, and different on every API-server replica
with its own file. So ``airflow-init`` writes the file once from ``.env`` (``AIRFLOW_SIMPLE_AUTH_PASSWORDS``, a JSON
object), into a volume only the API server mounts, and refuses to start the stack when a configured user has no
password, or a password is shorter than :data:`MIN_LENGTH`.

Exit status: 0 written, 1 configuration error (the message says what to change).
"""

from __future__ import annotations

import json
import os
import sys

PASSWORDS_ENV = "AIRFLOW_SIMPLE_AUTH_PASSWORDS"
MIN_LENGTH = 12


class AuthConfigError(ValueError):
    """The users or passwords in ``.env`` are unusable; the message names the variable and the fix."""


def usernames(users_spec: str) -> list[str]:
    """User names of a ``simple_auth_manager_users`` value (``name:role[:teams]``, comma-separated)."""
    names = [entry.split(":", 1)[0].strip() for entry in users_spec.split(",") if entry.strip()]
    if not names:
        raise AuthConfigError("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS lists no users, e.g. admin:admin,itops:op.")
    return names


def passwords_for(users_spec: str, passwords_json: str) -> dict[str, str]:
    """The passwords file's content: one password per configured user, validated."""
    if not (passwords_json or "").strip():
        raise AuthConfigError(f"{PASSWORDS_ENV} is not set: add it to .env with a password for every user in "
                              "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS (see .env.example).")
    try:
        given = json.loads(passwords_json)
    except json.JSONDecodeError as err:
        raise AuthConfigError(f"{PASSWORDS_ENV} is not JSON ({err.msg}): write it as "
                              '\'{"admin": "...", "itops": "..."}\' (single quotes around it in .env).') from None
    if not isinstance(given, dict):
        raise AuthConfigError(f'{PASSWORDS_ENV} must be a JSON object {{"user": "password", ...}}.')
    names = usernames(users_spec)
    missing = [n for n in names if not isinstance(given.get(n), str) or not given[n]]
    if missing:
        raise AuthConfigError(f"{PASSWORDS_ENV} has no password for {', '.join(missing)}: add "
                              f"{'it' if len(missing) == 1 else 'them'} (every user in "
                              "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS needs one).")
    short = [n for n in names if len(given[n]) < MIN_LENGTH]
    if short:
        raise AuthConfigError(f"{PASSWORDS_ENV}: the password of {', '.join(short)} is shorter than {MIN_LENGTH} "
                              "characters (e.g. `openssl rand -base64 18` makes a good one).")
    return {n: given[n] for n in names}


def write_passwords(path: str, content: dict[str, str], uid: int | None = None) -> None:
    """Write the file atomically, readable only by its owner (the API server's user, ``uid``)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(content) + "\n")
    if uid is not None and os.geteuid() == 0:
        os.chown(tmp, uid, 0)
    os.replace(tmp, path)


def main() -> int:
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from airflow.configuration import conf

    users_spec = conf.get("core", "simple_auth_manager_users")
    try:
        content = passwords_for(users_spec, os.environ.get(PASSWORDS_ENV, ""))
    except AuthConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    path = SimpleAuthManager.get_generated_password_file()
    uid = int(os.environ.get("AIRFLOW_UID") or 50000)
    write_passwords(path, content, uid)
    print(f"Passwords of {', '.join(content)} written to {path}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
