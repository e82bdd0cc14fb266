"""A PostgreSQL instance of the harness's own, so that a fault can restart it without touching the machine's
cluster (which other work may be using): `initdb` into a temporary directory with the machine's binaries,
served on a free port of 127.0.0.1, removed at the end."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.processes import free_port


def _binaries() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin (Debian's layout), else wherever pg_ctl is on the PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda path: int(Path(path).parts[4]))
    pg_ctl = found[-1] if found else shutil.which("pg_ctl")
    if pg_ctl is None:
        raise RuntimeError("PostgreSQL's server binaries (initdb, pg_ctl) are needed and were not found")
    return Path(pg_ctl).parent


class PrivatePostgres:
    """initdb refuses to run as root: as root, every command runs as the `postgres` user (`runuser`), who then
    owns the temporary directory."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bin = _binaries()
        self.directory = Path(tempfile.mkdtemp(prefix="mcagent-faults-pg-"))
        self.data = self.directory / "data"
        self.log_path = self.directory / "postgres.log"
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def version(self) -> str:
        return self._run("postgres", "--version").strip()

    def create(self) -> None:
        if self._as_postgres:
            shutil.chown(self.directory, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        self.start()

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.directory}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """`immediate` is a crash: every process ends at once, and the next start recovers from the WAL."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def remove(self, keep_log_as: Path) -> None:
        """Stop it if it runs, copy its log to `keep_log_as`, and delete the directory."""
        if (self.data / "postmaster.pid").exists():
            self.stop()
        if self.log_path.exists():
            shutil.copyfile(self.log_path, keep_log_as)
        shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self, program: str, *arguments: str) -> str:
        done = subprocess.run(
            [*self._as_postgres, str(self.bin / program), *arguments],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.directory,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout
