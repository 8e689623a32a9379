"""`consentry serve`: the web app and an embedded worker in one process."""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils.crypto import get_random_string
from django_tasks_db.management.commands.db_worker import Worker

log = logging.getLogger("consentry.serve")


def run_worker_forever(stop: threading.Event, interval: float = 0.5) -> None:
    """Run the task worker in this thread; a crash is logged and the worker restarts."""
    from consentry.messaging.recovery import Sweeper

    worker_id = "serve-" + get_random_string(16)
    sweeper = Sweeper(worker_id)  # beats for this worker and sweeps for what stopped workers left open
    sweeper.start()
    while not stop.is_set():
        worker = Worker(
            queue_names=["default"],
            interval=interval,
            batch=False,
            backend_name="default",
            startup_delay=False,
            max_tasks=None,
            worker_id=worker_id,
            excluded_queue_names=[],
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
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--threads", type=int, default=8)
        parser.add_argument("--no-worker", action="store_true", help="Serve only; run `consentry worker` separately.")

    def handle(self, *, host, port, threads, no_worker, **options):
        from waitress import serve  # type: ignore[import-untyped]  # waitress ships no types

        from consentry.web.demo import startup_banner
        from consentry.wsgi import application

        if banner := startup_banner():
            self.stderr.write(banner)
        stop = threading.Event()
        if not no_worker:
            threading.Thread(target=run_worker_forever, args=(stop,), name="consentry-worker", daemon=True).start()
        self.stdout.write(
            f"Consentry on http://{host}:{port}/ (provider: {settings.CONSENTRY_PROVIDER}, "
            f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, "
            f"worker: {'separate' if no_worker else 'embedded'})"
        )
        try:
            serve(application, host=host, port=port, threads=threads, ident="consentry", **proxy_options())
        finally:
            stop.set()
