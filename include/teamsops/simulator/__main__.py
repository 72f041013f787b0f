"""Command line of the simulator.

``python -m teamsops.simulator serve`` runs the simulated cloud (identity platform + Graph + Bot connector) over HTTPS
until SIGINT/SIGTERM. It writes, in ``--state-dir``: the CA clients must trust (``ca.pem``), the TLS and token-signing
keys (reused on restart) and, by default, ``connections.json``: one Airflow connection per tenant, keyed by conn id
(``msteams_default`` for the demo tenant, ``msteams_tenant2``... for the others), in the format of
``airflow connections import``. ``--ready-file`` is written once the server listens (for scripts to wait on).

``python -m teamsops.simulator generate --users 100000`` generates a tenant and prints its size and the time it took.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("teamsops.simulator")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    if args.command == "serve":
        return serve(args)
    return generate(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m teamsops.simulator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    commands = parser.add_subparsers(dest="command", required=True)

    serve_cmd = commands.add_parser("serve", help="run the simulator over HTTPS")
    serve_cmd.add_argument("--host", default="127.0.0.1", help="bind address (default loopback; 0.0.0.0 only on a private container network: the admin API is unauthenticated)")
    serve_cmd.add_argument("--port", type=int, default=8443, help="TCP port (0 picks a free one)")
    serve_cmd.add_argument("--public-url", default=None,
                           help="the URL clients use when it is not the bind address, e.g. https://msteams-simulator:8443 "
                                "on a compose network: written into the connection file, and its host is added to the "
                                "server certificate")
    _tenant_args(serve_cmd)
    serve_cmd.add_argument("--tenants", type=int, default=1, help="number of tenants (the first is the demo tenant)")
    serve_cmd.add_argument("--latency-ms", type=float, default=0,
                           help="latency added to every request (half before it is counted, half on the way back)")
    serve_cmd.add_argument("--jitter-ms", type=float, default=0, help="uniform +/- jitter on that latency")
    serve_cmd.add_argument("--throttle", default="off", choices=["off", "documented"], help="throttling profile")
    serve_cmd.add_argument("--throttle-scale", type=float, default=1.0,
                           help="multiplies every documented limit (the demo uses 10)")  # fmt: skip
    serve_cmd.add_argument("--fault-rate", type=float, default=0.0, help="share of requests failing with 503/504")
    serve_cmd.add_argument("--state-dir", default=".sim", help="keys, CA and connection file live here")
    serve_cmd.add_argument("--connection-file", default=None, help="default: <state-dir>/connections.json")
    serve_cmd.add_argument("--ready-file", default=None, help="written (JSON) once the server is listening")

    gen_cmd = commands.add_parser("generate", help="generate a tenant and report its size and generation time")
    _tenant_args(gen_cmd)
    return parser


def _tenant_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=3000, help="users per tenant")
    parser.add_argument("--teams", type=int, default=None, help="teams per tenant (default: users / 10)")
    parser.add_argument("--seed", type=int, default=42, help="generator seed (same seed => same tenant)")


def tenant_specs(users: int, teams: int | None, seed: int, count: int = 1) -> list[Any]:
    """The demo tenant's spec plus ``count - 1`` further tenants with their own ids, domains and apps."""
    from teamsops.simulator.generator import TenantSpec

    teams = teams if teams is not None else max(1, users // 10)
    specs = [TenantSpec(users=users, teams=teams, seed=seed)]
    for n in range(2, count + 1):
        tenant_id = str(uuid.UUID(int=(seed * 1_000_003 + n) & ((1 << 128) - 1), version=4))
        specs.append(TenantSpec(users=users, teams=teams, seed=seed + n, tenant_id=tenant_id,
                                domain=f"tenant{n}-demo.onmicrosoft.com",
                                display_name=f"Tenant {n} (simulated)"))  # fmt: skip
    return specs


def connection_id(index: int) -> str:
    return "msteams_default" if index == 0 else f"msteams_tenant{index + 1}"


def serve(args: argparse.Namespace) -> int:
    from teamsops.simulator.app import Simulator
    from teamsops.simulator.server import SimulatorServer
    from teamsops.simulator.testing import build_directory, connection_for
    from teamsops.simulator.tls import ensure_tls, load_or_create_signing_key

    state = Path(args.state_dir)
    public_url = args.public_url.rstrip("/") if args.public_url else None
    public_host = urlsplit(public_url).hostname if public_url else None
    if public_url and (urlsplit(public_url).scheme != "https" or not public_host):
        print(f"--public-url {args.public_url!r} must be an https:// URL with a host name", file=sys.stderr)
        return 2
    tls = ensure_tls(state, extra_names=[public_host] if public_host else [])
    specs = tenant_specs(args.users, args.teams, args.seed, max(1, args.tenants))
    started = time.perf_counter()
    directory, tenants = build_directory(specs[0], specs[1:])
    log.info("generated %d tenant(s) in %.2f s", len(tenants), time.perf_counter() - started)
    simulator = Simulator(directory, load_or_create_signing_key(state), latency_ms=args.latency_ms,
                          jitter_ms=args.jitter_ms, fault_rate=args.fault_rate, throttle=args.throttle,
                          throttle_scale=args.throttle_scale, seed=args.seed)  # fmt: skip
    try:
        server = SimulatorServer(simulator, tls, host=args.host, port=args.port)
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}. Pick another --port (0 = any free "
              "port) or stop the process using it.", file=sys.stderr)
        return 2
    base_url = public_url or server.base_url
    conn_file = Path(args.connection_file) if args.connection_file else state / "connections.json"
    ca_path = str(tls.ca_path.resolve())
    connections = {connection_id(i): connection_for(t, base_url, ca_path) for i, t in enumerate(tenants)}
    _write_json(conn_file, connections)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    print(f"simulator listening on {base_url}", flush=True)
    print(f"  trust this CA: {ca_path}", flush=True)
    print(f"  connections:   {conn_file.resolve()} ({', '.join(connections)})", flush=True)
    if args.throttle != "off":
        print(f"  throttling:    {args.throttle} limits x {args.throttle_scale:g}", flush=True)
    if args.ready_file:
        ready = {"base_url": base_url, "ca_path": ca_path, "connection_file": str(conn_file.resolve()),
                 "pid": os.getpid()}  # fmt: skip
        _write_json(Path(args.ready_file), ready)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        print("simulator stopped", flush=True)
    return 0


def generate(args: argparse.Namespace) -> int:
    from teamsops.simulator.generator import generate_tenant

    spec = tenant_specs(args.users, args.teams, args.seed)[0]
    started = time.perf_counter()
    tenant = generate_tenant(spec)
    elapsed = time.perf_counter() - started
    counts = {"users": tenant.user_count()}
    for name in ("groups", "team_members", "channels", "installed_apps", "role_assignments", "deleted_users"):
        counts[name] = len(tenant.snapshot(name))
    print(json.dumps({"tenant_id": tenant.id, "seconds": round(elapsed, 3), "counts": counts}, indent=2))
    return 0


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    # The connection file holds client secrets of the simulated apps: keep it private to the user.
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
