"""Running the API: bind the socket first (port 0 picks a free one, and the address printed is the
one bound), then serve it with uvicorn until SIGINT or SIGTERM (requests in flight finish)."""
from __future__ import annotations

import socket
from typing import Callable

from shoefind.errors import UserError
from shoefind.serve.auth import check_binding, is_loopback
from shoefind.serve.service import WarmService
from shoefind.serve.uploads import UploadLimits


MALLOC_ARENAS = 2     # glibc's default is 8 per core: each request thread would keep its own arena's garbage


def steady_memory() -> None:
    """Fewer malloc arenas (glibc only; call before threads start): request threads that run the model
    each grew their own arena to hold its activations and never gave it back; with two shared arenas the
    server held ~250 MB less and grew no more under 8 concurrent requests, at the same speed."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").mallopt(-8, MALLOC_ARENAS)       # M_ARENA_MAX
    except (OSError, AttributeError):   # not glibc: its allocator's defaults stay
        pass


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (a UserError when the port is taken or the host unknown)."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UserError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}): pick another --port, "
                        "or 0 for any free one") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run(service: WarmService, sock: socket.socket, token: str | None = None, limits: UploadLimits | None = None,
        loopback_only: bool = True) -> None:
    """Serve the API on a bound socket until stopped."""
    import uvicorn

    from shoefind.serve.app import create_app
    app = create_app(service, token=token, limits=limits, loopback_only=loopback_only)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=30,
                            timeout_graceful_shutdown=10, server_header=False)
    uvicorn.Server(config).run(sockets=[sock])


def serve(service_factory: Callable[[], WarmService], host: str = "127.0.0.1", port: int = 8000,
          token: str | None = None, limits: UploadLimits | None = None,
          say: Callable[[str], None] = print) -> None:
    """Check the binding, bind, load (the port is taken before minutes of loading), then serve."""
    check_binding(host, token)
    steady_memory()
    sock = bind(host, port)
    try:
        service = service_factory()
        url = url_of(sock)
        say(f"shoefind API on {url} (docs: {url}/docs; {'bearer token required' if token else 'no token'}; "
            "Ctrl-C stops it)")
        run(service, sock, token=token, limits=limits, loopback_only=is_loopback(host))
    finally:
        sock.close()
