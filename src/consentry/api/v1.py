"""REST API v1: the routers of each resource, their errors, and operation ids that stay put."""

from __future__ import annotations

from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.operation import Operation

from consentry.api.auth import ApiKeyAuth
from consentry.api.errors import STATUS_CODES, ErrorBody, ErrorOut, ErrorsOut, error
from consentry.api.examples import EXAMPLES
from consentry.errors import InvalidInput

# Operation ids are part of the public API (generated clients name their methods by them), and ninja
# derives them from the handler's module. These handlers lived in this module when the ids were
# first published; their ids stay as they were wherever the handlers now live.
FIRST_PUBLISHED_HERE = frozenset(
    {
        "patients_create",
        "patients_get",
        "patients_update",
        "contacts_status",
        "blocks_list",
        "blocks_create",
        "blocks_update",
        "blocks_delete",
        "categories_list",
        "categories_create",
        "categories_update",
        "messages_create",
        "messages_get",
    }
)


class ConsentryApi(NinjaAPI):
    def get_openapi_operation_id(self, operation: Operation) -> str:
        name = operation.view_func.__name__
        if name in FIRST_PUBLISHED_HERE:
            return f"consentry_api_v1_{name}"
        return super().get_openapi_operation_id(operation)

    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        """The document, with the refusals every operation can answer declared on each (all in the one
        error body): 401 and 403 everywhere, 404 where the path names an object, 422 where there is
        input, 400 where there is a body."""
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (ErrorBody, ErrorOut, ErrorsOut):
            components.setdefault(model.__name__, _component(model))
        for name, example in EXAMPLES.items():
            if name in components:
                components[name].setdefault("examples", [example])
        one = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
        many = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorsOut"}}}}
        for operations in schema["paths"].values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                parameters = operation.get("parameters", [])
                has_body = "requestBody" in operation
                refusals = {401: "No valid API key", 403: "The key lacks the operation's scope"}
                if any(p.get("in") == "path" for p in parameters):
                    refusals[404] = "Not found at this practice"
                if has_body:
                    refusals[400] = "The body is not JSON"
                for status, description in refusals.items():
                    responses.setdefault(status, {"description": description, **one})
                if parameters or has_body:
                    responses.setdefault(422, {"description": "Invalid input, every field at fault named", **many})
        return schema


def _component(model) -> dict:
    body = model.model_json_schema(ref_template="#/components/schemas/{model}")
    body.pop("$defs", None)
    return body


api = ConsentryApi(
    title="Consentry",
    version="1",
    description="Consent-aware patient messaging. Every object belongs to the API key's practice.",
    auth=ApiKeyAuth(),
    urls_namespace="api-v1",
)


@api.exception_handler(ValidationError)
def invalid_request(request, exc: ValidationError):
    """Ninja's 422, in the one error body, naming each field (``content.sms``, ``offset``)."""
    errors = []
    for found in exc.errors:
        loc = [str(part) for part in found.get("loc", ())]
        where = loc[2:] if loc[:1] == ["body"] else loc[1:]
        errors.append(
            {"code": "invalid", "message": str(found.get("msg", "invalid")), "field": ".".join(where) or "body"}
        )
    body = error("invalid", "invalid request") if not errors else {"error": errors[0]}
    return api.create_response(request, {**body, "errors": errors}, status=422)


@api.exception_handler(InvalidInput)
def invalid_input(request, exc: InvalidInput):
    body = error("invalid", exc.message, exc.field)
    return api.create_response(request, {**body, "errors": [body["error"]]}, status=422)


@api.exception_handler(Http404)
def not_found(request, exc: Http404):
    return api.create_response(request, error("not_found", str(exc) or "not found"), status=404)


@api.exception_handler(AuthenticationError)
def unauthorized(request, exc: AuthenticationError):
    message = "a valid API key is required: Authorization: Bearer csk_..."
    return api.create_response(request, error("unauthorized", message), status=401)


@api.exception_handler(HttpError)
def refused(request, exc: HttpError):
    code = STATUS_CODES.get(exc.status_code, "error")
    return api.create_response(request, error(code, str(exc.message)), status=exc.status_code)


api.add_router("/patients", "consentry.api.patients.router")
api.add_router("/contacts", "consentry.api.contacts.router")
api.add_router("/blocks", "consentry.api.blocks.router")
api.add_router("/categories", "consentry.api.categories.router")
api.add_router("/messages", "consentry.api.messages.router")
api.add_router("/conversations", "consentry.api.conversations.router")
api.add_router("/practice", "consentry.api.practice.router")
api.add_router("/keys", "consentry.api.keys.router")
api.add_router("/locations", "consentry.api.locations.router")
api.add_router("/webhook-endpoints", "consentry.api.webhook_endpoints.router")
api.add_router("/fhir", "consentry.api.fhir.router")
api.add_router("", "consentry.api.deliveries.router")
api.add_router("", "consentry.api.push.router")
api.add_router("", "consentry.api.self_service.router")
api.add_router("", "consentry.api.recalls.router")
