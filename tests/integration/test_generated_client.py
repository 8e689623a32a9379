"""The OpenAPI document is valid, shows an example of every body (each fitting its schema) and declares
fixed lists of values as enums; and a client generated from it works: an integrator who runs a generator on
``/api/v1/openapi.json`` (here openapi-python-client, as a user would, in a subprocess) gets typed
methods that create a patient, send that patient a message and read the message back.

The generated client speaks HTTP through httpx to the service's own WSGI application (in process, on
the test database), so every request passes the real URL routing, authentication and validation.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.test import Client
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from consentry.messaging.models import Delivery
from consentry.messaging.selectors import DELIVERY_EXPORT_FIELDS
from consentry.wsgi import application
from tests.integration.test_api_fuzz import InTestTransaction

pytestmark = pytest.mark.django_db


def test_the_document_is_valid_openapi():
    document = Client().get("/api/v1/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises, naming the part at fault


def _bodies(document: dict):
    """(operation, media type, body) for every JSON body an operation takes or answers with a 2xx."""
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            name = f"{method.upper()} {path}"
            for media, content in operation.get("requestBody", {}).get("content", {}).items():
                yield f"{name} request", media, content
            for status, response in operation["responses"].items():
                for media, content in response.get("content", {}).items():
                    if status.startswith("2") or media != "application/json":
                        yield f"{name} {status}", media, content


def _resolve(document: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_every_body_of_every_operation_has_an_example_that_fits_its_schema():
    document = Client().get("/api/v1/openapi.json").json()
    missing, wrong = [], []
    for where, _media, content in _bodies(document):
        schema = content["schema"]
        shown = _resolve(document, schema.get("items", schema))
        examples = [content["example"]] if "example" in content else shown.get("examples", [])
        if not examples:
            missing.append(where)
        root = {**schema, "components": document["components"]}
        if "items" in schema:  # an array's example is one of its items
            root = {**schema["items"], "components": document["components"]}
        for example in examples:
            for problem in Draft202012Validator(root).iter_errors(example):
                wrong.append(f"{where}: {problem.json_path}: {problem.message}")
    assert not missing, f"no example: {missing}"
    assert not wrong, "\n".join(wrong)


def test_the_csv_example_has_the_exports_columns():
    document = Client().get("/api/v1/openapi.json").json()
    export = document["paths"]["/api/v1/messages/{message_id}/deliveries.csv"]["get"]["responses"]["200"]
    assert export["content"]["text/csv"]["example"].split("\r\n")[0].split(",") == list(DELIVERY_EXPORT_FIELDS)


# The fields whose values are one of a fixed list, wherever they appear: the document says which. Not
# those that hold an object, nor these of free text.
ENUMERATED = {"status", "reason", "kind", "channel", "line_type", "scopes", "marketing_consent", "subject", "source"}
FREE_TEXT = {"OptOutIn.reason", "EmailContent.subject", "NoticeOut.subject"}


def _is_enum(document: dict, schema: dict) -> bool:
    schema = _resolve(document, schema)
    if "enum" in schema or "const" in schema:
        return True
    if "items" in schema:
        return _is_enum(document, schema["items"])
    options = schema.get("anyOf", []) + schema.get("allOf", [])
    real = [o for o in options if o.get("type") != "null"]
    return bool(real) and all(_is_enum(document, o) for o in real)


def test_fields_with_a_fixed_list_of_values_are_enums():
    document = Client().get("/api/v1/openapi.json").json()
    loose = [
        f"{name}.{field}"
        for name, schema in document["components"]["schemas"].items()
        for field, prop in schema.get("properties", {}).items()
        if field in ENUMERATED
        and f"{name}.{field}" not in FREE_TEXT
        and _resolve(document, prop).get("type") != "object"
        and not _is_enum(document, prop)
    ]
    assert not loose, f"not declared as enums: {loose}"


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """The document as the running service serves it, and the client generated from it."""
    where = tmp_path_factory.mktemp("client")
    document = where / "openapi.json"
    document.write_text(json.dumps(Client().get("/api/v1/openapi.json").json()))
    (where / "config.yaml").write_text("post_hooks: []\n")  # no formatter run on the generated code
    generator = Path(sys.executable).with_name("openapi-python-client")
    done = subprocess.run(
        [str(generator), "generate", "--path", str(document), "--output-path", str(where / "consentry_client")]
        + ["--meta", "none", "--config", str(where / "config.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr  # nothing of the API was skipped
    return where


def _module(generated: Path, name: str):
    if str(generated) not in sys.path:
        sys.path.insert(0, str(generated))
    return importlib.import_module(f"consentry_client.{name}")


def test_a_generated_client_creates_a_patient_and_sends_them_a_message(generated, practice_and_key):
    practice, key = practice_and_key
    client_module = _module(generated, "client")
    models = _module(generated, "models")
    create_patient = _module(generated, "api.patients.consentry_api_v1_patients_create")
    send = _module(generated, "api.messages.consentry_api_v1_messages_create")
    read = _module(generated, "api.messages.consentry_api_v1_messages_get")
    client = client_module.AuthenticatedClient(
        base_url="http://testserver",
        token=key,
        httpx_args={"transport": httpx.WSGITransport(app=InTestTransaction(application))},
    )

    patient = create_patient.sync(
        client=client,
        body=models.PatientIn(
            first_name="Ava",
            last_name="Reyes",
            phones=[models.PhoneIn(number="(415) 555-0111", line_type=models.LineType.MOBILE)],
        ),
    )
    assert isinstance(patient, models.PatientOut), patient
    assert patient.phones[0].number == "+14155550111" and patient.phones[0].line_type == models.LineType.MOBILE

    message = send.sync(
        client=client,
        body=models.MessageIn(
            kind=models.RequestKind.MANUAL,
            category="document_shared",
            patient_ids=[patient.id],
            content=models.ContentIn(sms="Your forms are ready to sign."),
        ),
    )
    assert isinstance(message, models.MessageOut), message
    assert [d.channel for d in message.deliveries] == ["sms"]
    assert Delivery.objects.get(message_id=message.id).address == "+14155550111"

    again = read.sync(client=client, message_id=message.id)
    assert isinstance(again, models.MessageOut) and again.id == message.id

    # Refusals come back as the documented error models, not as untyped bodies.
    refused = create_patient.sync(client=client, body=models.PatientIn(first_name="Bo", preferred_phone="+14155550199"))
    assert isinstance(refused, models.ErrorsOut) and refused.error.field == "preferred_phone"
    wrong_key = client_module.AuthenticatedClient(
        base_url="http://testserver",
        token="csk_not-a-key",
        httpx_args={"transport": httpx.WSGITransport(app=InTestTransaction(application))},
    )
    denied = read.sync(client=wrong_key, message_id=message.id)
    assert isinstance(denied, models.ErrorOut) and denied.error.code == "unauthorized"
