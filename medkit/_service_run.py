"""Running a site service with uvicorn: in a background thread, or in the foreground."""

from __future__ import annotations

import errno
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import uvicorn

from medkit._client import SiteClient
from medkit._service import create_app
from medkit.exceptions import ServiceError, ServiceSettingError

logger = logging.getLogger("medkit.network")

TOKEN_ENV = "MEDKIT_TOKEN"
"""Environment variable from which ``medkit serve`` reads the write token."""

READ_TOKENS_ENV = "MEDKIT_READ_TOKENS"
"""Environment variable from which ``medkit serve`` reads read-only tokens,
separated by commas."""

_START_TIMEOUT_SECONDS = 30.0
_STOP_TIMEOUT_SECONDS = 10.0


def new_token() -> str:
    """Return a new random bearer token: 43 URL-safe characters (256 bits)."""
    return secrets.token_urlsafe(32)


class RunningSite:
    """A site service running in a background thread of this process.

    Use :func:`start_site` to make one. ``url`` is the address it listens on,
    with the real port when port 0 was requested, and ``token`` its bearer
    token. Stop it with :meth:`stop`, or use it as a context manager.
    """

    def __init__(
        self,
        site: str,
        url: str,
        token: str,
        server: uvicorn.Server,
        thread: threading.Thread,
    ) -> None:
        self.site = site
        self.url = url
        self.token = token
        self._server = server
        self._thread = thread
        self._client: SiteClient | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RunningSite {self.site!r} at {self.url} ({state})>"

    def __enter__(self) -> RunningSite:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def app(self) -> Any:
        """The FastAPI application that the thread serves."""
        return self._server.config.app

    def client(self, **options: Any) -> SiteClient:
        """Return a :class:`SiteClient` of this site.

        Without ``options`` every call returns the same client, which
        :meth:`stop` closes. With ``options``, such as ``timeout=30``, it
        returns a new client built with them, which the caller closes.
        """
        if options:
            return SiteClient(self.url, self.token, **options)
        if self._client is None:
            self._client = SiteClient(self.url, self.token)
        return self._client

    def stop(self, timeout: float = _STOP_TIMEOUT_SECONDS) -> None:
        """Stop serving: finish open requests, close the database, end the thread."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if not self._thread.is_alive():
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            # Open connections kept it waiting; close them without waiting more.
            self._server.force_exit = True
            self._thread.join(timeout)


def start_site(
    site: str,
    *,
    db_url: str | None = None,
    port: int = 0,
    token: str | None = None,
    host: str = "127.0.0.1",
    **options: Any,
) -> RunningSite:
    """Start a site service in a background thread and wait until it responds.

    Made for notebooks: two calls run two sites, A and B, on two loopback
    ports of one machine.

    Parameters
    ----------
    site : str
        The site's name.
    db_url : str, optional
        A SQLAlchemy database URL; by default the records stay in memory until
        the site stops.
    port : int, default=0
        The port to listen on; 0 picks a free one, which ``.url`` then reports.
    token : str, optional
        The write token; by default a new random one, in ``.token``.
    host : str, default="127.0.0.1"
        The address to listen on. The default accepts connections from this
        machine only. The service speaks plain HTTP, so serve beyond the
        loopback address only behind a TLS proxy.
    **options
        Further settings of :func:`medkit.network.create_app`, such as
        ``read_tokens`` (read-only tokens for partner sites) or
        ``max_page_size``.

    Returns
    -------
    RunningSite

    Raises
    ------
    ServiceSettingError
        If a setting is invalid, or the port is in use.
    ServiceError
        If the site does not respond on ``/health`` within 30 s.

    Examples
    --------
    >>> with start_site("A") as site_a, start_site("B") as site_b:  # doctest: +SKIP
    ...     site_a.client().upload(records_a)
    ...     site_b.client().upload(records_b)
    """
    check_port(port)
    token = new_token() if token is None else token
    app = create_app(site, token=token, **_given(db_url=db_url), **options)
    sock = _bind_for(app, host, port)
    url = _url(host, sock.getsockname()[1])
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run,
        kwargs={"sockets": [sock]},
        name=f"medkit-site-{site}",
        daemon=True,
    )
    thread.start()
    running = RunningSite(site, url, token, server, thread)
    try:
        _wait_until_healthy(url, thread)
    except BaseException:
        running.stop()
        sock.close()  # uvicorn closes it on a normal stop
        raise
    logger.info("Site %s serving on %s", site, url)
    return running


def serve(
    site: str,
    *,
    token: str,
    db_url: str,
    port: int = 8000,
    host: str = "127.0.0.1",
    on_start: Callable[[str], None] | None = None,
    access_log: bool = False,
    **options: Any,
) -> None:
    """Serve a site in the foreground until SIGINT or SIGTERM, as ``medkit serve`` does.

    Parameters
    ----------
    site, token, db_url
        As for :func:`medkit.network.create_app`.
    port : int, default=8000
        0 picks a free port.
    host : str, default="127.0.0.1"
        The address to listen on. The service speaks plain HTTP, so bind
        beyond 127.0.0.1 only behind a TLS proxy.
    on_start : callable, optional
        Called with the site's URL once the port is open.
    access_log : bool, default=False
        Log every request, with its path and query, through uvicorn.
    **options
        Further settings of :func:`medkit.network.create_app`, such as
        ``read_tokens``.

    Raises
    ------
    ServiceSettingError
        If a setting is invalid, the database cannot be opened or the port is
        in use.
    """
    check_port(port)
    app = create_app(site, token=token, db_url=db_url, **options)
    sock = _bind_for(app, host, port)
    url = _url(host, sock.getsockname()[1])
    config = uvicorn.Config(app, log_config=None, access_log=access_log, lifespan="on")
    logger.info("Site %s listening on %s", site, url)
    if on_start is not None:
        on_start(url)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind and listen on ``host``:``port`` (0 picks a free port), IPv4 or IPv6.

    Raises
    ------
    ServiceSettingError
        If the port is outside 0 to 65535, is in use, or cannot be bound on
        ``host``.
    """
    check_port(port)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets whose
    # protocol is IPPROTO_TCP. With the default protocol 0, every response
    # waited about 40 ms for the client's delayed acknowledgement.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise _bind_failed(host, port, error) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def check_port(port: object) -> None:
    """Raise ServiceSettingError unless ``port`` is a TCP port number or 0."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ServiceSettingError(
            f"Port {port!r} is invalid; use a number from 1 to 65535, or 0 to pick "
            "a free port.",
            name="port",
            value=port,
        )


def _bind_for(app: Any, host: str, port: int) -> socket.socket:
    """Bind the socket of ``app``, closing its database if that fails."""
    try:
        return bind_socket(host, port)
    except ServiceSettingError:
        app.state.store.close()
        raise


def _bind_failed(host: str, port: int, error: OSError) -> ServiceSettingError:
    if error.errno == errno.EADDRINUSE:
        detail = (
            f"Port {port} on {host} is already in use, probably by another site "
            "service. Stop that service, or choose another port (--port, or 0 to "
            "pick a free one)."
        )
    elif error.errno == errno.EACCES:
        detail = (
            f"Port {port} on {host} needs administrator rights; use a port from "
            "1024 to 65535, or 0 to pick a free one."
        )
    else:
        detail = (
            f"Cannot listen on {host} port {port}: {error.strerror or error}. Use "
            "an address of this machine, such as 127.0.0.1."
        )
    return ServiceSettingError(detail, name="port", value=port)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _given(**options: Any) -> dict[str, Any]:
    return {name: value for name, value in options.items() if value is not None}


def _wait_until_healthy(url: str, thread: threading.Thread) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    with httpx.Client(timeout=2.0) as http:
        while True:
            if not thread.is_alive():
                raise ServiceError(
                    f"The site at {url} stopped while starting; run it with "
                    "logging at INFO to see why.",
                    url=url,
                )
            try:
                if http.get(f"{url}/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"The site at {url} did not respond on /health within "
                    f"{_START_TIMEOUT_SECONDS:.0f} s.",
                    url=url,
                )
            time.sleep(0.05)
