"""Static checks of the Docker deployment: docker-compose.yaml, Dockerfile, .env.example and .dockerignore.

No Docker engine runs where these tests run, so nothing here starts a container. What can be checked without one is
what breaks a deployment first: a service without an image, a component missing a mount or a setting the others
have, a healthcheck a ``depends_on`` condition waits for in vain, an init step that is not there, a variable compose
needs that .env.example never mentions, an image pinned to another Airflow than requirements.txt.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"

AIRFLOW_COMPONENTS = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker",
                      "airflow-triggerer")  # fmt: skip
ONE_SHOT = {"airflow-init", "msteams-demo-connection"}
REQUIRED_SERVICES = {"postgres", "redis", *AIRFLOW_COMPONENTS, "airflow-init"}
AIRFLOW_MOUNTS = {"dags": "/opt/airflow/dags", "plugins": "/opt/airflow/plugins", "include": "/opt/airflow/include",
                  "logs": "/opt/airflow/logs", "config": "/opt/airflow/config"}  # fmt: skip
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; $${VAR} is compose's escape for "$".
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


# ------------------------------------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    return yaml.safe_load(compose_text)


@pytest.fixture(scope="module")
def compose_values(compose: dict[str, Any]) -> str:
    """Every string of the parsed file, one per line: what compose interpolates (comments are not)."""

    def strings(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [s for k, v in node.items() for s in (*strings(k), *strings(v))]
        if isinstance(node, list):
            return [s for item in node for s in strings(item)]
        return [node] if isinstance(node, str) else []

    return "\n".join(strings(compose))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines the way compose reads a .env file (comments, blank lines, single/double-quoted values)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key), f"{path.name}:{number} is not KEY=VALUE: {raw!r}"
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${...} substitution (enough of it for these files); a missing required variable raises KeyError."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        value = env.get(name)
        unset = value is None or (op.startswith(":") and value == "")
        if op.endswith("-"):
            return arg if unset else value  # type: ignore[return-value]
        if unset:
            raise KeyError(f"{name} is required ({arg or 'no message'})")
        return value  # type: ignore[return-value]

    return INTERPOLATION.sub(replace, text).replace("$$", "$")


def volume_targets(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (host path or volume name) of a service's short-syntax volumes."""
    targets = {}
    for entry in service.get("volumes", []):
        source, target = entry.split(":")[:2]
        targets[target] = source
    return targets


def shell_script(service: dict[str, Any]) -> str:
    command = service["command"]
    return command[-1] if isinstance(command, list) else command


# ------------------------------------------------------------------------------------------------ services
def test_all_components_are_defined(services: dict[str, Any]) -> None:
    missing = REQUIRED_SERVICES - set(services)
    assert not missing, f"docker-compose.yaml lacks {sorted(missing)}"
    assert services["flower"].get("profiles") == ["flower"], "flower is optional: only under the flower profile"


def test_every_service_has_an_image_or_a_build(services: dict[str, Any]) -> None:
    lacking = [name for name, svc in services.items() if not (svc.get("image") or svc.get("build"))]
    assert not lacking, f"services without image or build: {lacking}"


def test_airflow_services_run_the_project_image(services: dict[str, Any]) -> None:
    """Every service that runs project code is built from ./Dockerfile and shares one image tag."""
    runs_code = [n for n in services if n.startswith("airflow-") or n in ("flower", "msteams-simulator",
                                                                           "msteams-demo-connection")]
    images = {services[n]["image"] for n in runs_code}
    assert len(images) == 1, f"project services use different images: {images}"
    for name in runs_code:
        assert services[name].get("build") in (".", {"context": "."}), f"{name} is not built from ./Dockerfile"


def test_long_running_services_have_healthchecks(services: dict[str, Any]) -> None:
    one_shot = {name for name, svc in services.items() if svc.get("restart") == "no"}
    assert one_shot == ONE_SHOT, f"one-shot services (restart: 'no') are {sorted(one_shot)}"
    for name, svc in services.items():
        if name in ONE_SHOT:
            continue
        check = svc.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} runs for good but has no healthcheck"
        assert svc.get("restart") in ("always", "unless-stopped"), f"{name} is not restarted when it dies"


def test_depends_on_waits_for_conditions_that_can_happen(services: dict[str, Any]) -> None:
    """Waiting for service_healthy without a healthcheck, or for a server to complete, never ends."""
    for name, svc in services.items():
        for target, spec in (svc.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = spec.get("condition") if isinstance(spec, dict) else None
            assert condition, f"{name} -> {target} has no condition"
            if condition == "service_healthy":
                assert services[target].get("healthcheck"), f"{name} waits for {target} to be healthy: no healthcheck"
            elif condition == "service_completed_successfully":
                assert target in ONE_SHOT, f"{name} waits for {target} to complete, but it runs for good"
            # A profile-only service cannot be a dependency of a service that runs without that profile.
            if services[target].get("profiles"):
                assert set(services[target]["profiles"]) <= set(svc.get("profiles") or []), \
                    f"{name} (profiles {svc.get('profiles')}) depends on profile-only {target}"  # fmt: skip


def test_components_start_after_init_and_their_backends(services: dict[str, Any]) -> None:
    for name in (*AIRFLOW_COMPONENTS, "flower"):
        deps = services[name]["depends_on"]
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
        assert deps["postgres"]["condition"] == "service_healthy", name
        assert deps["redis"]["condition"] == "service_healthy", name
    # Workers talk to the API server's execution API from their first task on.
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
    assert services["airflow-init"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_worker_can_be_scaled(services: dict[str, Any]) -> None:
    """`--scale airflow-worker=N` fails on a fixed container_name or a published host port."""
    worker = services["airflow-worker"]
    assert "container_name" not in worker
    assert not worker.get("ports"), "a published port would clash between worker replicas"
    assert worker["command"] == "celery worker"


# ------------------------------------------------------------------------------------------------ mounts
@pytest.mark.parametrize("name", [*AIRFLOW_COMPONENTS, "airflow-init"])
def test_components_mount_the_project_folders(services: dict[str, Any], name: str) -> None:
    targets = volume_targets(services[name])
    for folder, target in AIRFLOW_MOUNTS.items():
        assert targets.get(target) == f"./{folder}", f"{name} does not mount ./{folder} at {target}"


@pytest.mark.parametrize("name", AIRFLOW_COMPONENTS)
def test_components_share_the_data_root(services: dict[str, Any], name: str) -> None:
    """Every task of a sync run may run on another worker: they must all see the same data root."""
    env = services[name]["environment"]
    default_root = interpolate(env["MSTEAMS_DATA_ROOT"], {})
    assert default_root.startswith("file:///"), default_root
    path = default_root.removeprefix("file://")
    mounts = volume_targets(services[name])
    assert any(path == t or path.startswith(t + "/") for t, src in mounts.items() if not src.startswith(".")), \
        f"{name}: the default data root {path} is not on a named (shared) volume"  # fmt: skip


def test_include_code_shadows_the_installed_copy(services: dict[str, Any]) -> None:
    """The mounted ./include and ./plugins come first on PYTHONPATH, so code and mounted DAGs never disagree."""
    for name in AIRFLOW_COMPONENTS:
        path = services[name]["environment"]["PYTHONPATH"].split(":")
        assert path[:2] == ["/opt/airflow/include", "/opt/airflow/plugins"], f"{name}: PYTHONPATH={path}"


def test_ui_passwords_file_stays_off_the_workers(services: dict[str, Any]) -> None:
    env = services["airflow-apiserver"]["environment"]
    password_dir = str(Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).parent)
    with_auth = {n for n, svc in services.items() if password_dir in volume_targets(svc)}
    assert with_auth == {"airflow-apiserver", "airflow-init"}


# ------------------------------------------------------------------------------------------------ environment
@pytest.mark.parametrize("name", [*AIRFLOW_COMPONENTS, "airflow-init", "flower"])
def test_components_have_the_shared_settings(services: dict[str, Any], name: str) -> None:
    svc = services[name]
    env = svc["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://airflow:")
    broker = env["AIRFLOW__CELERY__BROKER_URL"]
    assert broker.startswith("redis://") and "@redis:6379" in broker, broker
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("SimpleAuthManager")
    # Secrets every component must share are required: compose refuses to start without them.
    for secret in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        assert re.fullmatch(r"\$\{" + secret + r":\?[^}]+\}", env[secret]), f"{name}: {secret}={env[secret]!r}"
    env_files = svc.get("env_file")
    env_files = [env_files] if isinstance(env_files, str) else env_files
    assert ".env" in [e if isinstance(e, str) else e["path"] for e in env_files], f"{name} does not read .env"
    assert svc["user"] in ("${AIRFLOW_UID:-50000}:0", "0:0"), f"{name} must run in group 0 (the image's rule)"


def test_components_agree_on_every_setting(services: dict[str, Any]) -> None:
    """The same metadata DB, broker, keys and data root everywhere (a component with another key is a broken one)."""
    reference = services["airflow-scheduler"]["environment"]
    for name in (*AIRFLOW_COMPONENTS, "airflow-init", "flower", "msteams-demo-connection"):
        env = services[name]["environment"]
        differing = {k for k in reference if env.get(k) != reference[k]}
        assert not differing, f"{name} differs from the scheduler in {sorted(differing)}"


def test_no_pip_additional_requirements() -> None:
    for path in (COMPOSE_FILE, REPO / "Dockerfile", REPO / ".env.example"):
        text = path.read_text()
        assert not re.search(r"^\s*-?\s*_PIP_ADDITIONAL_REQUIREMENTS\s*[:=]", text, re.M), \
            f"{path.name} installs packages at container start"  # fmt: skip


# ------------------------------------------------------------------------------------------------ init
def test_init_migrates_creates_the_pool_and_the_audit_database(services: dict[str, Any]) -> None:
    init = services["airflow-init"]
    script = shell_script(init)
    steps = ["airflow db migrate", "docker/auth_passwords.py", "python -m teamsops_airflow.setup",
             "docker/init_audit_db.py"]  # fmt: skip
    positions = [script.find(step) for step in steps]
    assert all(p >= 0 for p in positions), dict(zip(steps, positions, strict=True))
    assert positions[0] < positions[2], "the pool needs the migrated database"
    assert "set -e" in script, "a failed step must fail the init (and keep the components from starting)"
    assert init["user"] == "0:0" and "chown" in script, "init hands the mount points to AIRFLOW_UID"
    # The scripts it runs are in the image.
    for script_name in ("auth_passwords.py", "init_audit_db.py"):
        assert (REPO / "docker" / script_name).is_file()
    assert re.search(r"^COPY .*\bdocker /opt/teamsops/docker$", (REPO / "Dockerfile").read_text(), re.M)


def test_init_requires_the_secrets_its_steps_need(services: dict[str, Any]) -> None:
    env = services["airflow-init"]["environment"]
    for name in ("AIRFLOW_SIMPLE_AUTH_PASSWORDS", "AIRFLOW_CONN_MSTEAMS_AUDIT"):
        assert re.fullmatch(r"\$\{" + name + r":\?[^}]+\}", env.get(name, "")), name


# ------------------------------------------------------------------------------------------------ demo profile
def test_demo_profile_adds_the_simulator_and_its_connection(services: dict[str, Any]) -> None:
    sim, importer = services["msteams-simulator"], services["msteams-demo-connection"]
    assert sim["profiles"] == ["demo"] and importer["profiles"] == ["demo"]
    args = sim["command"]
    assert args[0] == "serve"
    option = {args[i]: args[i + 1] for i in range(1, len(args) - 1) if args[i].startswith("--")}
    assert option["--host"] == "0.0.0.0", "the simulator must listen on the compose network, not its loopback"
    public = re.fullmatch(r"https://([^:/]+):(\d+)", option["--public-url"])
    assert public and public.group(1) == "msteams-simulator" and public.group(2) == option["--port"]
    state_dir = option["--state-dir"]
    sim_volume = volume_targets(sim)[state_dir]
    # The connection file says verify=<state-dir>/ca.pem: the workers need the CA at that very path.
    for name in (*AIRFLOW_COMPONENTS, "msteams-demo-connection"):
        assert volume_targets(services[name]).get(state_dir) == sim_volume, f"{name} cannot read the simulator's CA"
    script = shell_script(importer)
    assert f"airflow connections import {state_dir}/connections.json --overwrite" in script
    assert "AIRFLOW_CONN_MSTEAMS_DEFAULT" in script, "an env connection would hide the imported one: check for it"
    assert importer["depends_on"]["msteams-simulator"]["condition"] == "service_healthy"
    # The simulator throttles at the scale the workers pace at.
    assert option["--throttle-scale"] == "${MSTEAMS_RATE_LIMIT_SCALE:-1}"


def test_simulator_cli_accepts_the_demo_command(services: dict[str, Any]) -> None:
    from teamsops.simulator.__main__ import _parser

    args = [interpolate(str(a), {}) for a in services["msteams-simulator"]["command"]]
    _, unknown = _parser().parse_known_args(args)
    assert not unknown, f"python -m teamsops.simulator rejects {unknown}"


# ------------------------------------------------------------------------------------------------ image
def test_dockerfile_pins_the_airflow_of_requirements() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    assert len(froms) == 1, froms
    match = re.fullmatch(r"apache/airflow:(\d+\.\d+\.\d+)-python(\d+\.\d+)", froms[0])
    assert match, f"FROM {froms[0]} is not a pinned apache/airflow:<version>-python<x.y> tag"
    pinned = re.search(r"^apache-airflow==(\S+)\s*$", (REPO / "requirements.txt").read_text(), re.M)
    assert pinned, "requirements.txt does not pin apache-airflow=="
    assert match.group(1) == pinned.group(1), f"image {match.group(1)} vs requirements.txt {pinned.group(1)}"
    requires = re.search(r'requires-python\s*=\s*">=(\d+\.\d+)', (REPO / "pyproject.toml").read_text())
    assert requires and match.group(2) == requires.group(1), "the image's Python is not the project's"


def test_dockerfile_installs_requirements_with_constraints_and_the_package() -> None:
    runs = " ".join(re.findall(r"^RUN (.+?)(?<!\\)$", (REPO / "Dockerfile").read_text().replace("\\\n", " "), re.M))
    words = shlex.split(runs)
    assert "-r" in words and words[words.index("-r") + 1].endswith("requirements.txt")
    assert "-c" in words and words[words.index("-c") + 1].endswith("constraints.txt")
    assert "/opt/teamsops" in words, "the project package itself is not installed"


def test_build_context_never_contains_secrets() -> None:
    ignored = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    assert ".env" in ignored and "!.env.example" in ignored


# ------------------------------------------------------------------------------------------------ .env.example
def test_env_example_documents_every_compose_variable(compose_values: str) -> None:
    documented = set(parse_env_file(REPO / ".env.example"))
    text = (REPO / ".env.example").read_text()
    used = {m.group(1): m.group(2) or "" for m in INTERPOLATION.finditer(compose_values)}
    required = {name for name, op in used.items() if not op.endswith("-")}
    assert required, "expected required variables (${VAR:?...}) in docker-compose.yaml"
    assert not required - documented, f".env.example lacks required {sorted(required - documented)}"
    undocumented = [name for name in used if not re.search(rf"^#? ?{name}=", text, re.M)]
    assert not undocumented, f".env.example does not mention {undocumented}"


def test_env_example_fills_every_required_variable(compose_values: str) -> None:
    """Once the empty secrets are filled in, compose can interpolate the whole file."""
    env = parse_env_file(REPO / ".env.example")
    for key, value in env.items():
        if value == "":
            env[key] = "filled-in"
    interpolate(compose_values, env)
    # ...and until they are, it refuses: no usable secret is shipped in the example.
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD|FERNET|JWT|SECRET|PASSWORDS"):
        interpolate(compose_values, parse_env_file(REPO / ".env.example"))


def test_env_example_ships_no_secret() -> None:
    import json

    env = parse_env_file(REPO / ".env.example")
    for key in ("POSTGRES_PASSWORD", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET",
                "AIRFLOW__API__SECRET_KEY", "AIRFLOW_SIMPLE_AUTH_PASSWORDS"):  # fmt: skip
        assert env[key] == "", f"{key} has a value in .env.example: everyone would share it"
    audit = json.loads(env["AIRFLOW_CONN_MSTEAMS_AUDIT"])
    assert audit["password"] == "" and audit["host"] == "postgres" and audit["schema"] == "msteams_audit"
    assert "AIRFLOW_CONN_MSTEAMS_DEFAULT" not in env, "must stay commented out, or it hides the demo's connection"


def test_env_example_documents_every_setting_the_code_reads() -> None:
    text = (REPO / ".env.example").read_text()
    read = set()
    for folder in ("include/teamsops", "plugins/teamsops_airflow"):
        for path in (REPO / folder).rglob("*.py"):
            if "simulator" not in path.parts:
                read |= set(re.findall(r"\"(MSTEAMS_[A-Z_]+)\"", path.read_text()))
    assert read, "expected MSTEAMS_* settings in the code"
    missing = sorted(name for name in read if not re.search(rf"^#? ?{name}=", text, re.M))
    assert not missing, f".env.example does not document {missing}"


def test_env_example_users_can_approve() -> None:
    """The approvers exist and have a role that may answer approvals (op or admin); the auditor cannot."""
    env = parse_env_file(REPO / ".env.example")
    roles = dict(entry.split(":")[:2] for entry in env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(","))
    approvers = [a.strip() for a in env["MSTEAMS_APPROVERS"].split(",") if a.strip()]
    assert len(approvers) >= 2, "a requester is never their own approver: name at least two"
    for name in approvers:
        assert roles.get(name) in ("op", "admin"), f"approver {name} has role {roles.get(name)}"
    assert "viewer" in roles.values()


def test_env_file_is_git_ignored() -> None:
    result = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO, check=False)
    assert result.returncode == 0, ".env is not in .gitignore"
    result = subprocess.run(["git", "check-ignore", "-q", ".env.example"], cwd=REPO, check=False)
    assert result.returncode == 1, ".env.example must stay tracked"
