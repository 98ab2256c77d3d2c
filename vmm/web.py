"""The web service, ``python3 -m vmm.web``: mail clients' autoconfiguration (Thunderbird,
Outlook, Apple; vmm/clientconfig.py) and the MTA-STS policy (vmm/mtasts.py) over HTTPS
with the stack's certificate, plain HTTP redirecting there. It asks the database through
the web role's functions (migrations 0007, 0009) and nothing else; later issues grow it
into the admin API. With VMM_ACME it also keeps the stack's certificate (vmm/acme.py),
answering the directory's HTTP-01 challenges. Starlette rather than FastAPI: FastAPI and
pydantic added a third to its resident memory (62 against 42 MB measured), and the idle
stack has a budget.

The same event loop serves the other direction of MTA-STS: other domains' policies for
Postfix's outgoing mail (``_serve_mta_sts_resolver``). Both are HTTPS on asyncio with
the same network and resolver; one interpreter instead of two saved 17 MiB, idle and at
rest (bench/RESULTS.md, the run of 288aa0f)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import ssl

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from vmm import acme, clientconfig, mtasts, tls
from vmm.addresses import DomainName, EmailAddress
from vmm.errors import DatabaseError, ExitCode, InvalidValue, NotFound, VmmError
from vmm.limits import SERVICES
from vmm.runtime import Runtime

HTTP_PORT = 8080
HTTPS_PORT = 8443
XML = "application/xml"
APPLE_PROFILE = "application/x-apple-aspen-config"
# Answered over plain HTTP too: the health check and the ACME challenges.
PLAIN_PATHS = ("/ping", acme.CHALLENGE_PATH)
# An ACME token: base64url (RFC 8555 8.3), which keeps it to one file name.
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
log = logging.getLogger("vmm.web")


def _host(request: Request) -> str:
    """The name the client asked for, without a port."""
    return request.headers.get("host", "").rsplit(":", 1)[0].strip("[]").lower()


class _HttpsOnly(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.url.scheme == "http" and not request.url.path.startswith(PLAIN_PATHS):
            target = request.url.replace(scheme="https", netloc=_host(request))
            return RedirectResponse(str(target), status_code=301)
        return await call_next(request)


def _error(exc: VmmError) -> PlainTextResponse:
    """The HTTP answer to a failed request: its one line, with the status it means."""
    if isinstance(exc, DatabaseError):
        return PlainTextResponse("the database is unavailable, try again later\n", status_code=503)
    status = 404 if exc.code == ExitCode.NOT_FOUND else 400
    return PlainTextResponse(f"{exc}\n", status_code=status)


async def _vmm_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, VmmError)
    return _error(exc)


def create_app(runtime: Runtime) -> Starlette:
    def lookup(query: str, *params: str) -> list[tuple[object, ...]]:
        """The rows of one of the web role's functions. psycopg is imported here, as in
        the policy service: with the settings (and their password libraries) it adds a
        third to this process's memory, and a stack at rest has no client to configure."""
        from vmm import db

        with db.connect(runtime, role="web") as conn, db.transaction(conn):
            return conn.execute(query, params).fetchall()

    def offer(domain: DomainName, local: str = "") -> clientconfig.Offer:
        rows = lookup("SELECT smtp, pop3, imap, sieve FROM web_client_services(%s, %s)", local, domain.ace)
        if not rows:
            raise NotFound(f"{domain.ace} is not a domain of this server")
        services = dict(zip(SERVICES, map(bool, rows[0]), strict=True))
        return clientconfig.Offer(domain.ace, runtime.hostname, services)

    def offer_for(request: Request) -> tuple[clientconfig.Offer, str]:
        """The address the client asked for (emailaddress=) and what it may use; without
        one, the domain the host name names (autoconfig.DOMAIN or DOMAIN)."""
        text = request.query_params.get("emailaddress", "")
        if text:
            address = EmailAddress.parse(text)
            return offer(address.domain, address.local_part), str(address)
        return offer(DomainName.parse(_host(request).removeprefix("autoconfig."))), ""

    def ping(_: Request) -> Response:
        return PlainTextResponse("pong")

    # Thunderbird asks autoconfig.DOMAIN first, then DOMAIN's well-known path.
    def autoconfig(request: Request) -> Response:
        found, _ = offer_for(request)
        return Response(clientconfig.thunderbird(found), media_type=XML)

    # Outlook posts to autodiscover.DOMAIN (or DOMAIN), in either spelling.
    async def autodiscover(request: Request) -> Response:
        address = EmailAddress.parse(clientconfig.autodiscover_address(await request.body()))
        found = await asyncio.to_thread(offer, address.domain, address.local_part)
        return Response(clientconfig.outlook(found, str(address)), media_type=XML)

    def apple(request: Request) -> Response:
        if not request.query_params.get("emailaddress"):
            raise InvalidValue("an Apple profile is made for one address: add ?emailaddress=ADDRESS")
        found, address = offer_for(request)
        disposition = f'attachment; filename="{address.partition("@")[0]}.mobileconfig"'
        return Response(
            clientconfig.apple(found, address),
            media_type=APPLE_PROFILE,
            headers={"Content-Disposition": disposition},
        )

    def challenge(request: Request) -> Response:
        token = str(request.path_params["token"])
        path = acme.challenge_root(runtime) / acme.CHALLENGE_PATH.strip("/") / token
        if not TOKEN.fullmatch(token) or not path.is_file():
            raise NotFound("no such ACME challenge")
        return PlainTextResponse(path.read_text())

    def mta_sts(request: Request) -> Response:
        host = _host(request)
        if not host.startswith(f"{mtasts.HOST_LABEL}."):
            raise NotFound(f"the MTA-STS policy is served on {mtasts.HOST_LABEL}.DOMAIN")
        offer(DomainName.parse(host.removeprefix(f"{mtasts.HOST_LABEL}.")))  # hosted here?
        from vmm.settings import Settings

        stored = {str(name): str(value) for name, value in lookup("SELECT name, value FROM web_settings()")}
        mode = Settings(stored).get("mta_sts.mode")
        return PlainTextResponse(mtasts.policy(mode, runtime.hostname))

    routes = [
        Route("/ping", ping),
        Route("/mail/config-v1.1.xml", autoconfig),
        Route("/.well-known/autoconfig/mail/config-v1.1.xml", autoconfig),
        Route("/autodiscover/autodiscover.xml", autodiscover, methods=["POST"]),
        Route("/Autodiscover/Autodiscover.xml", autodiscover, methods=["POST"]),
        Route("/apple/mail.mobileconfig", apple),
        Route(mtasts.PATH, mta_sts),
        Route(acme.CHALLENGE_PATH + "{token}", challenge),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(_HttpsOnly)],
        exception_handlers={VmmError: _vmm_error},
    )


def _domains(runtime: Runtime) -> list[str]:
    """Every domain name hosted here, for the certificate's names."""
    from vmm import db

    with db.connect(runtime, role="web") as conn, db.transaction(conn):
        return [str(name) for (name,) in conn.execute("SELECT domainname FROM web_domains()")]


def _file_state(runtime: Runtime) -> tuple[tuple[int, int, int], ...]:
    """What changes when the certificate or its key is replaced."""
    states = []
    for path in (runtime.tls_cert, runtime.tls_key):
        found = os.stat(path)
        states.append((found.st_ino, found.st_mtime_ns, found.st_size))
    return tuple(states)


async def _keep_certificate(runtime: Runtime, context: ssl.SSLContext) -> None:
    """Present the current certificate: load it again whenever it was replaced (by the
    ACME pass below, or by the postmaster); with VMM_ACME, run a pass every interval."""
    loaded = _file_state(runtime)
    next_pass = 0.0
    loop = asyncio.get_running_loop()
    while True:
        if runtime.acme_directory and loop.time() >= next_pass:
            outcome = await asyncio.to_thread(acme.run, runtime, lambda: _domains(runtime))
            if not outcome.ok:
                log.error("ACME: %s", outcome.message)
            elif outcome.message != acme.CURRENT:
                log.info("ACME: %s", outcome.message)
            next_pass = loop.time() + runtime.acme_interval
        try:
            if (state := _file_state(runtime)) != loaded:
                context.load_cert_chain(runtime.tls_cert, runtime.tls_key)
                loaded = state
                log.info("loaded the replaced certificate")
        except (OSError, ssl.SSLError) as exc:
            # Half replaced (the key before the certificate): the next look loads it.
            log.warning("cannot load the replaced certificate yet: %s", exc)
        await asyncio.sleep(min(tls.POLL_SECONDS, runtime.acme_interval))


async def _serve_mta_sts_resolver(port: int) -> None:
    """Other domains' MTA-STS policies (RFC 8461) as Postfix's TLS policy table (socketmap
    "postfix"): Debian's postfix-mta-sts-resolver, its server in this event loop. Policies
    are fetched over HTTPS from each domain's mta-sts. host, names asked of the stack's
    resolver, and cached in memory. Only "enforce" policies are answered: "testing" ones
    count as none (strict_testing off), as RFC 8461 wants for a policy under test."""
    from postfix_mta_sts_resolver import utils
    from postfix_mta_sts_resolver.responder import STSSocketmapResponder

    config = utils.populate_cfg_defaults(
        {
            "host": "0.0.0.0",  # noqa: S104 - Postfix asks from its own container
            "port": port,
            "cache": {"type": "internal", "options": {"cache_size": 10_000}},
            # Seconds for a domain's DNS and HTTPS answers together.
            "default_zone": {"strict_testing": False, "timeout": 4},
        }
    )
    cache = utils.create_cache(config["cache"]["type"], config["cache"]["options"])
    await cache.setup()
    # The loop holds the listening server, and through it the responder, until the
    # process exits. Its stop() is not called: it waits a fixed second for nothing, a
    # cache being all it holds.
    await STSSocketmapResponder(config, asyncio.get_running_loop(), cache).start()


def main() -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    runtime = Runtime.from_env()
    contexts: list[ssl.SSLContext] = []

    class _Config(Config):
        """Hypercorn's TLS context, kept so that a replaced certificate is loaded into it."""

        def create_ssl_context(self) -> ssl.SSLContext | None:
            context = super().create_ssl_context()
            if context is not None:
                contexts.append(context)
            return context

    config = _Config()
    config.bind = [f"0.0.0.0:{HTTPS_PORT}"]
    config.insecure_bind = [f"0.0.0.0:{HTTP_PORT}"]
    config.certfile = str(runtime.tls_cert)
    config.keyfile = str(runtime.tls_key)
    config.accesslog = "-"

    async def run() -> None:
        # PID 1 gets no default action for SIGTERM: without a handler `docker stop` waits.
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await _serve_mta_sts_resolver(runtime.mta_sts_port)
        # Starlette's and Hypercorn's ASGI type hints differ in spelling, not in protocol.
        server = asyncio.create_task(serve(create_app(runtime), config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
        while not contexts and not server.done():
            await asyncio.sleep(0.05)
        keeper = asyncio.create_task(_keep_certificate(runtime, contexts[0])) if contexts else None
        await server
        if keeper:
            keeper.cancel()

    asyncio.run(run())


if __name__ == "__main__":
    main()
