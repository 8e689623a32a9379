"""`consentry serve`: the web app and an embedded worker in one process."""

from __future__ import annotations

import errno
import logging
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.crypto import get_random_string
from django_tasks_db.management.commands.db_worker import Worker

from consentry.management.commands._options import port as port_number

log = logging.getLogger("consentry.serve")

# Before each piece of its work the embedded worker waits for the web threads to be quiet this long, or at
# most YIELD_AT_MOST in all (bench/webhook.py: with 10 ms and 250 ms its reading broke into a steady 200
# requests a second often enough to hold their p99 near 60 ms; with these, about 20 ms).
QUIET = 0.025
YIELD_AT_MOST = 1.0


class Requests:
    """The WSGI application, counting the requests it is answering, so that the embedded worker's work can
    wait for a pause in them: the worker shares this process (and its interpreter lock, and on SQLite the
    write lock) with the web threads, and a STOP's answer must not wait behind the reading of earlier ones
    (they are in force from their own answers)."""

    def __init__(self, application):
        self.application = application
        self.active = 0
        self.last_answered = 0.0
        self.changed = threading.Condition()

    def __call__(self, environ, start_response):
        with self.changed:
            self.active += 1
        try:
            return self.application(environ, start_response)
        finally:
            with self.changed:
                self.active -= 1
                self.last_answered = time.monotonic()
                if not self.active:
                    self.changed.notify_all()

    def pause(self, quiet: float = QUIET, longest: float = YIELD_AT_MOST) -> None:
        """Wait until no request has been answered for ``quiet`` seconds, or ``longest`` seconds in all (so
        the work goes on, slowly, under any load)."""
        deadline = time.monotonic() + longest
        with self.changed:
            while (now := time.monotonic()) < deadline:
                if self.active:
                    self.changed.wait(deadline - now)
                elif (still := now - self.last_answered) >= quiet:
                    return
                else:
                    self.changed.wait(min(quiet - still, deadline - now))


class EmbeddedWorker(Worker):
    """The task worker, which lets the web threads answer first (``pause``) before each task it runs."""

    def __init__(self, *args, pause, **kwargs):
        super().__init__(*args, **kwargs)
        self.pause = pause

    def run_task(self, db_task_result) -> None:
        self.pause()
        super().run_task(db_task_result)


def run_worker_forever(stop: threading.Event, requests: Requests, interval: float = 0.5) -> None:
    """Run the task worker and the reader of received texts in this process, after the web requests in
    flight; a crash is logged and the worker restarts."""
    from consentry.conversations.reader import Reader
    from consentry.messaging.recovery import Sweeper

    worker_id = "serve-" + get_random_string(16)
    sweeper = Sweeper(worker_id)  # beats for this worker and sweeps for what stopped workers left open
    sweeper.start()
    Reader(pause=requests.pause).start()  # reads received texts, apart from the task queue
    while not stop.is_set():
        worker = EmbeddedWorker(
            queue_names=["default"],
            interval=interval,
            batch=False,
            backend_name="default",
            startup_delay=False,
            max_tasks=None,
            worker_id=worker_id,
            excluded_queue_names=[],
            pause=requests.pause,
        )
        try:
            worker.run()
        except Exception:
            log.exception("embedded worker stopped; restarting in 1s")
            time.sleep(1)


def proxy_options() -> dict:
    """Believe X-Forwarded-Proto from the TLS proxy's address only; waitress drops it from anyone else."""
    if not settings.CONSENTRY_TRUSTED_PROXY:
        return {}
    return {"trusted_proxy": settings.CONSENTRY_TRUSTED_PROXY, "trusted_proxy_headers": {"x-forwarded-proto"}}


class Command(BaseCommand):
    help = "Serve the web app and API, with an embedded delivery worker."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="The address to listen on (default 127.0.0.1).")
        parser.add_argument(
            "--port", type=port_number, default=8000, help="The port to listen on, 1-65535; 0 picks a free one."
        )
        parser.add_argument("--threads", type=int, default=8, help="Web threads answering requests (default 8).")
        parser.add_argument("--no-worker", action="store_true", help="Serve only; run `consentry worker` separately.")

    def handle(self, *, host, port, threads, no_worker, **options):
        from waitress import create_server  # type: ignore[import-untyped]  # waitress ships no types

        from consentry.web.demo import is_demo, startup_banner
        from consentry.wsgi import application

        requests = Requests(application)
        try:
            server = create_server(
                application if no_worker else requests,
                host=host,
                port=port,
                threads=threads,
                ident="consentry",
                **proxy_options(),
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CommandError(f"port {port} on {host} is in use: choose another with --port") from None
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        served = served_url(host, _listening_port(server))
        if is_demo() and not settings.CONSENTRY_PUBLIC_URL:
            # Links in emails and on pages lead back to the address served (production sets its own).
            settings.CONSENTRY_PUBLIC_URL = served
        if banner := startup_banner():
            self.stderr.write(banner)
        stop = threading.Event()
        if not no_worker:
            threading.Thread(
                target=run_worker_forever, args=(stop, requests), name="consentry-worker", daemon=True
            ).start()
        self.stdout.write(
            f"Consentry on {served}/ (provider: {settings.CONSENTRY_PROVIDER}, "
            f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, "
            f"worker: {'separate' if no_worker else 'embedded'})"
        )
        self.stdout.flush()
        try:
            server.run()
        finally:
            stop.set()
            server.close()


def _listening_port(server) -> int:
    """The port the server listens on (the system's pick for --port 0); a host name that resolves to
    several addresses gives one server a socket each, all on the same port."""
    if hasattr(server, "effective_port"):
        return server.effective_port
    return server.effective_listen[0][1]


def served_url(host: str, port: int) -> str:
    """The URL of the address served: a wildcard host is reached on this machine at 127.0.0.1."""
    if host in ("0.0.0.0", "", "*"):
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"
