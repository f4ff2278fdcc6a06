"""Running uvicorn: one server process, or several on one port, each with a listening socket
of its own. Either way the port is bound before anything is announced, and `on_ready` runs
once every server listens (so a taken port gives an error, never a banner then an error).

uvicorn's workers share one listening socket, and a worker that wakes accepts every connection
then pending: a burst of connections (four uploads starting together) often all land on one
worker while the other idles. With one socket per worker (SO_REUSEPORT) the kernel spreads new
connections over the workers instead.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any

import click

STOP_TIMEOUT_S = 20.0


STARTUP_FAILURE = 3  # uvicorn's exit status when the app could not start

Announce = Callable[[], None]


def serve_one(host: str, port: int, options: dict[str, Any], on_ready: Announce) -> None:
    """Run one uvicorn server (`options`: uvicorn.Config's) on a socket bound here first."""
    import uvicorn

    sock = _plain_socket(host)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc.strerror}") from exc
    server = _announcing_server(uvicorn.Config(**options), on_ready)
    with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C before uvicorn took the signals
        server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _announcing_server(config: Any, on_started: Announce) -> Any:
    """A uvicorn.Server that calls `on_started` once it listens."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                on_started()

    return Server(config)


def serve_workers(
    host: str, port: int, workers: int, options: dict[str, Any], on_ready: Announce
) -> None:
    """Run `workers` uvicorn servers (`options`: uvicorn.Config's) until SIGINT or SIGTERM,
    starting a new worker in place of one that dies."""
    claims = _claim_port(host, port)
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    running = [_start(context, host, port, options) for _ in range(workers)]
    replacing: dict[int | None, int | None] = {}  # a replacement not serving yet: whom it replaces
    announced = False
    try:
        while not stop.wait(0.1 if not announced else 0.5):
            if not announced and all(ready.is_set() for _, ready in running):
                on_ready()
                announced = True
            for position, (process, ready) in enumerate(running):
                if process.pid in replacing and ready.is_set():
                    replaced = replacing.pop(process.pid)
                    click.echo(f"worker {process.pid} serves in place of {replaced}", err=True)
                if process.is_alive():
                    continue
                if not ready.is_set():  # restarting it would fail the same way, forever
                    raise click.ClickException(f"worker {process.pid} failed to start")
                gone = f"worker {process.pid} exited ({process.exitcode}), restarting"
                click.echo(gone, err=True)
                running[position] = _start(context, host, port, options)
                replacing[running[position][0].pid] = process.pid
    finally:
        _stop_all([process for process, _ in running])
        for claim in claims:
            claim.close()


def _claim_port(host: str, port: int) -> list[socket.socket]:
    """Fail now, with a message, if the port is taken; and keep a second packyard (whose
    sockets would join ours and take half the connections) from starting on it."""
    guard = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe = _reuse_port_socket(host)
    try:
        guard.bind(f"\0packyard-port-{host}-{port}")  # Linux abstract name, gone at exit
        probe.bind((host, port))  # bound, never listening: it takes no connections
    except OSError as exc:
        guard.close()
        probe.close()
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc.strerror}") from exc
    return [guard, probe]


def _plain_socket(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


def _reuse_port_socket(host: str) -> socket.socket:
    sock = _plain_socket(host)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def _start(context: Any, host: str, port: int, options: dict[str, Any]) -> tuple[BaseProcess, Any]:
    ready = context.Event()
    process: BaseProcess = context.Process(target=_worker, args=(host, port, options, ready))
    process.start()
    return process, ready


def _worker(host: str, port: int, options: dict[str, Any], ready: Any) -> None:
    import uvicorn

    sock = _reuse_port_socket(host)
    sock.bind((host, port))
    _announcing_server(uvicorn.Config(**options), ready.set).run(sockets=[sock])


def _stop_all(processes: list[BaseProcess]) -> None:
    """SIGTERM lets each worker finish its requests and close its storage."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
