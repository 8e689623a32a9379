"""`consentry serve`'s embedded worker waits for a quiet moment in the web requests before each piece of work."""

import threading
import time

from consentry.management.commands.serve import Requests


def test_pause_waits_for_a_request_in_flight_and_then_a_quiet_moment():
    release = threading.Event()

    def app(environ, start_response):
        release.wait(5)
        return [b"ok"]

    requests = Requests(app)
    answered = threading.Thread(target=requests, args=({}, None))
    answered.start()
    while not requests.active:
        time.sleep(0.001)
    threading.Timer(0.2, release.set).start()
    started = time.monotonic()
    requests.pause(quiet=0.05, longest=5)
    waited = time.monotonic() - started
    answered.join()
    assert requests.active == 0
    assert waited >= 0.2 + 0.05  # the request's end, then the quiet moment


def test_pause_gives_up_after_its_longest_wait_under_constant_load():
    requests = Requests(lambda environ, start_response: [b"ok"])
    requests.active = 1  # a request that never ends
    started = time.monotonic()
    requests.pause(quiet=0.01, longest=0.1)
    assert 0.1 <= time.monotonic() - started < 1


def test_pause_returns_at_once_when_nothing_was_answered_lately():
    requests = Requests(lambda environ, start_response: [b"ok"])
    started = time.monotonic()
    requests.pause(quiet=0.01, longest=5)
    assert time.monotonic() - started < 0.5
