"""Child processes that must become healthy in time, and say clearly why when they do not."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


class StackError(Exception):
    """A component of the local stack could not be started; the message names it and says why."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ensure_port_free(component: str, host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers themselves do: connections lingering in TIME_WAIT do not block a restart.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            raise StackError(
                f"{component}: port {port} on {host} is already in use ({error.strerror})"
            ) from None


def require_executable(component: str, path: Path, hint: str) -> Path:
    if not path.is_file():
        raise StackError(f"{component}: binary not found at {path} ({hint})")
    if not os.access(path, os.X_OK):
        raise StackError(f"{component}: {path} is not executable")
    return path


class ManagedProcess:
    """A child process whose output goes to a log file, started and stopped with clear errors."""

    def __init__(
        self,
        component: str,
        command: Sequence[str],
        log_path: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.component = component
        self.command = list(command)
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            try:
                self.process = subprocess.Popen(
                    self.command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    start_new_session=True,  # Ctrl-C reaches the runner, which stops children in order.
                )
            except OSError as error:
                raise StackError(
                    f"{self.component}: cannot run {self.command[0]}: {error}"
                ) from None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text[-lines:]) or "(empty log)"

    def wait_until_healthy(self, probe: Callable[[], bool], timeout_seconds: float) -> None:
        """Polls `probe` until it returns True; fails fast if the process exits meanwhile."""
        assert self.process is not None
        deadline = time.monotonic() + timeout_seconds
        while True:
            code = self.process.poll()
            if code is not None:
                raise StackError(
                    f"{self.component} exited with code {code} during start-up; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            if probe():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise StackError(
                    f"{self.component} did not become healthy within {timeout_seconds:.0f} s; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_seconds: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if the process has not exited in time; returns its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


class LaunchedServer:
    """A server the local stack launched as a child process (etcd, NATS, a kube-apiserver)."""

    _process: ManagedProcess | None = None

    def stop(self) -> None:
        if self._process:
            self._process.stop()

    @property
    def running(self) -> bool:
        return bool(self._process and self._process.running)

    @property
    def pid(self) -> int | None:
        return self._process.process.pid if self._process and self._process.process else None
