"""What every loopback fake of a provider's HTTP API shares: a quiet handler and a server in a thread."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass


class CountingServer(ThreadingHTTPServer):
    """Counts the connections it accepts, whether or not a request follows (a TLS hello, say)."""

    connections = 0

    def verify_request(self, request, client_address) -> bool:
        self.connections += 1
        return True


def serve(handler: type[BaseHTTPRequestHandler], fake) -> CountingServer:
    """Serve ``handler`` on a free loopback port, set ``fake.url`` to it, and return the server."""
    server = CountingServer(("127.0.0.1", 0), handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server
