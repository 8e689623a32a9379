"""Whatever a client sends, the API never answers with a 5xx, and every answer it documents is as documented.

Schemathesis reads the OpenAPI document from the app itself (``/api/v1/openapi.json``
through WSGI, in process: no port) and, for every operation, sends its
boundary and negative cases (its coverage phase) and ``MAX_EXAMPLES`` generated
requests, authenticated with a real practice's key, on the test database. A
request that names an object in its path is sent twice: with the generated ids
(all unknown, so 404s) and again with the practice's real objects, so that the
handlers behind the lookups are fuzzed too. An otherwise valid body whose
strings carry a lone surrogate, which JSON can carry and nothing can store,
must be a 422.

Each answer is checked for:

- no server error (``not_a_server_error``), ever;
- a body that matches the document's schema for its status
  (``response_schema_conformance``) and a documented content type;
- a documented status: the document declares every refusal an operation can
  answer (401, 403, and 404, 422 or 400 where they apply), so any other fails.

Generation is derandomized: every run sends the same requests. The run ends
with a line such as "API fuzz: 5000 requests over 28 operations, 0 server
errors, 0 schema violations".
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.meta import REQUEST_SHAPE_PROBES, coverage_scenario

from consentry.patients.models import ApiKey
from consentry.patients.practices import hash_api_key
from consentry.vocabulary import Scope
from consentry.wsgi import application
from tests.conftest import summary
from tests.integration.test_tenant_isolation import PATH_VALUES, make_tenant

MAX_EXAMPLES = 30
LONE = "\udfff"


class InTestTransaction:
    """The service's WSGI application, minus the per-request ``close_old_connections``, as Django's test client does.

    The request runs on the test's own connection, inside the transaction that
    pytest-django rolls back; closing it after each request would end the test.
    """

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            response = self.app(environ, start_response)
            try:
                body = b"".join(response)
            finally:
                response.close()  # sends request_finished, still disconnected
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)
        return [body]


# A fixed seed (one per operation, derived from it) and derandomized generation: every run sends the same requests.
schema = schemathesis.openapi.from_wsgi(
    "/api/v1/openapi.json", InTestTransaction(application), config=schemathesis.Config.from_dict({"seed": 8128})
)


class Tally:
    def __init__(self):
        self.requests = 0
        self.server_errors = 0
        self.schema_violations = 0
        self.poisoned = 0
        self.operations: set[str] = set()

    def line(self) -> str:
        return (
            f"API fuzz: {self.requests} requests over {len(self.operations)} operations "
            f"({self.poisoned} with a lone surrogate), {self.server_errors} server errors, "
            f"{self.schema_violations} schema violations"
        )


@pytest.fixture(scope="module")
def tally(request):
    tally = Tally()
    yield tally
    summary(request, tally.line())


@pytest.fixture
def tenant(db):
    tenant = make_tenant(
        "Oak Clinic", "+14155550100", "Ottilie", "+14155550121", "ottilie@example.com", "oak_newsletter", ["recall"]
    )
    # DELETE /keys/{key_id} is fuzzed with generated ids: the key the fuzz signs with has one no generator
    # reaches, so that it revokes the practice's other keys, never its own.
    secret = "csk_fuzz-" + "0" * 40
    ApiKey.objects.create(
        pk=2**40, practice=tenant.practice, key_hash=hash_api_key(secret), label="fuzz", scopes=list(Scope)
    )
    return replace(tenant, key=secret)


def _is_probe(case) -> bool:
    """A request malformed on purpose (a method the operation lacks, a wrong content type): only a 5xx counts."""
    return coverage_scenario(case) in REQUEST_SHAPE_PROBES or case.method.upper() != case.operation.method.upper()


def _send(case, tally: Tally):
    response = case.call()
    label = case.operation.label
    tally.requests += 1
    tally.operations.add(label)
    if response.status_code >= 500:
        tally.server_errors += 1
    answer_checks = [checks.not_a_server_error]
    if not _is_probe(case):
        answer_checks.append(checks.content_type_conformance)
        answer_checks.append(checks.response_schema_conformance)
    try:
        case.validate_response(response, checks=answer_checks)
    except FailureGroup:
        if response.status_code < 500:
            tally.schema_violations += 1
        raise
    if _is_probe(case):
        return response
    documented = {int(code) for code in case.operation.definition.raw["responses"] if code.isdigit()}
    if response.status_code not in documented:
        tally.schema_violations += 1
        raise AssertionError(
            f"{label} answered {response.status_code}, which its document does not declare: "
            f"{response.content[:300]!r}\nReproduce with: {case.as_curl_command()}"
        )
    return response


def _on_real_objects(case, tenant):
    """The same request, for the practice's real objects: past the lookups, into the handlers."""
    return case.operation.Case(
        method=case.method,
        path_parameters={name: PATH_VALUES[name](tenant) for name in case.path_parameters},
        query=case.query,
        headers=case.headers,
        body=case.body,
        media_type=case.media_type,
    )


def _poisoned(case, path_parameters):
    """A valid request with a lone surrogate at the end of each string the body declares at its top level."""
    if not isinstance(case.body, dict) or case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    declared = _declared_properties(case)
    body = {
        k: (
            v + LONE
            if isinstance(v, str) and k in declared
            else [x + LONE if isinstance(x, str) else x for x in v]
            if isinstance(v, list) and k in declared
            else v
        )
        for k, v in case.body.items()
    }
    if body == case.body:
        return None
    return case.operation.Case(
        method=case.method,
        path_parameters=path_parameters,
        query=case.query,
        headers=case.headers,
        body=body,
        media_type=case.media_type,
    )


def _declared_properties(case) -> set[str]:
    content = case.operation.definition.raw.get("requestBody", {}).get("content", {})
    body_schema = content.get("application/json", {}).get("schema", {})
    ref = body_schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        body_schema = schema.raw_schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return set(body_schema.get("properties", {}))


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
)
def test_no_request_is_a_server_error_and_every_answer_is_as_documented(case, tenant, tally):
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {tenant.key}"}
    _send(case, tally)
    if _is_probe(case):
        return
    real = case
    if case.path_parameters:
        real = _on_real_objects(case, tenant)
        _send(real, tally)
    poisoned = _poisoned(case, real.path_parameters)
    if poisoned is not None:
        tally.poisoned += 1
        response = _send(poisoned, tally)
        assert response.status_code == 422, (
            f"{case.operation.label} took a lone surrogate with {response.status_code}: {response.content[:300]!r}"
        )
