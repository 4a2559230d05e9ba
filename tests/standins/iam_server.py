"""LOCAL STAND-IN for IBM Cloud IAM, for tests only. This is NOT IBM's service.

IBM Cloud cannot be reached from the test environment, so this small stdlib HTTP
server plays the parts of IAM that ibmcloud.registry uses, with the request and
response shapes of the IBM Cloud SDK (ibm-platform-services 0.77, ibm-cloud-sdk-core
3.28) as read from the SDK's source:

* ``POST /identity/token`` - API key -> access token (form body; unsigned JWT-shaped
  token with ``iat``/``exp`` and ``account.bss``; an unknown key is a 400 like IAM's).
* Identity: ``/v1/serviceids/`` (GET with paging, POST), ``/v1/serviceids/{id}``
  (GET, PUT with ``If-Match``, DELETE - which also deletes the service ID's API keys
  and policies), ``/v1/apikeys`` (GET with paging, POST), ``/v1/apikeys/details``
  (GET, key value in the ``IAM-ApiKey`` header), ``/v1/apikeys/{id}`` (GET, PUT with
  ``If-Match``, DELETE).
* Policy management v2: ``/v2/policies`` (GET with paging, POST), ``/v2/policies/{id}``
  (GET with an ``ETag`` header, PUT with ``If-Match``, DELETE). v1 ``/v1/policies`` is
  not served (the collection uses v2 only).

It is strict where the real service is: unknown query parameters, missing required
fields, a body that is not ``application/json`` and a missing or unknown bearer token
are rejected. State lives in memory. Test controls live under ``/_standin/`` (and as
methods of :class:`IamStandIn` for in-process use):

* ``POST /_standin/faults`` ``{"method": "POST", "path": "/v1/apikeys", "status": 429,
  "count": 2, "retry_after": "1", "skip": 0}`` - after ``skip`` matching requests went
  through, the next ``count`` get that status (429 with ``Retry-After``, a 5xx, or a 400
  for a token exchange) before anything else happens.
* ``GET /_standin/requests`` - the request log (time, method, path, query parameter
  names, status, and for a token exchange the identity that logged in; never a header
  or body, so never a key value).
* ``GET /_standin/state`` - service IDs, API keys (a ``sha256`` of each value, never the
  value) and policies.
* ``POST /_standin/reset`` - forget everything except the admin keys.
* ``POST /_standin/admin-keys`` ``{"apikey": ..., "account_id": ..., "iam_id": ...}``.

CLI: ``python tests/standins/iam_server.py --port 0 --print-url`` (the admin key is
read from the environment variable named by ``--admin-key-env``, default
``IAM_STANDIN_ADMIN_KEY``, so that it never appears in a process list).
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime
import hashlib
import json
import os
import re
import secrets
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlencode, urlsplit

from serving import BackgroundServer

DEFAULT_ACCOUNT = "0123456789abcdef0123456789abcdef"
TOKEN_TTL = 3600
GRANT_TYPE_APIKEY = "urn:ibm:params:oauth:grant-type:apikey"
MAX_KEYS_PER_IDENTITY = 20  # IAM's documented limit per identity

# Query parameters the IAM API documents per operation (SDK source); anything else is a 400.
SERVICE_ID_LIST_PARAMS = {"account_id", "group_id", "name", "pagesize", "pagetoken", "sort", "order",
                          "include_history", "filter", "show_group_id"}
SERVICE_ID_CREATE_PARAMS = {"show_group_id"}
SERVICE_ID_GET_PARAMS = {"include_history", "include_activity", "show_group_id"}
SERVICE_ID_UPDATE_PARAMS = {"show_group_id"}
API_KEY_LIST_PARAMS = {"account_id", "iam_id", "pagesize", "pagetoken", "scope", "type", "sort", "order",
                       "include_history", "filter", "group_id"}
API_KEY_GET_PARAMS = {"include_history", "include_activity"}
API_KEY_DETAILS_PARAMS = {"include_history"}
POLICY_LIST_PARAMS = {"account_id", "iam_id", "access_group_id", "type", "service_type", "service_name",
                      "service_group_id", "sort", "format", "state", "limit", "start"}
POLICY_GET_PARAMS = {"format"}

SERVICE_ID_CREATE_FIELDS = {"account_id", "name", "group_id", "description", "unique_instance_crns", "apikey"}
SERVICE_ID_UPDATE_FIELDS = {"name", "description", "unique_instance_crns"}
API_KEY_CREATE_FIELDS = {"name", "iam_id", "description", "account_id", "apikey", "store_value",
                         "support_sessions", "action_when_leaked", "expires_at"}
API_KEY_UPDATE_FIELDS = {"name", "description", "support_sessions", "action_when_leaked", "expires_at"}
POLICY_FIELDS = {"control", "type", "description", "subject", "resource", "pattern", "rule"}

IAM_REGIONS = {"global", "au-syd", "br-sao", "ca-mon", "ca-tor", "eu-de", "eu-es", "eu-gb", "in-che",
               "in-mum", "jp-osa", "jp-tok", "us-south", "us-east"}
PLATFORM_ROLES = ("Viewer", "Operator", "Editor", "Administrator")
SERVICE_ROLES = {"container-registry": ("Reader", "Writer", "Manager")}
RESOURCE_OPERATORS = {"stringEquals", "stringMatch", "stringExists"}
SERVICE_ID_PATH = re.compile(r"^/v1/serviceids/(?P<id>[^/]+)$")
API_KEY_PATH = re.compile(r"^/v1/apikeys/(?P<id>[^/]+)$")
POLICY_PATH = re.compile(r"^/v2/policies/(?P<id>[^/]+)$")
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def _identity_time() -> str:
    """IAM Identity's timestamp format, e.g. 2026-11-27T08:00+0000."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M+0000")


def _policy_time() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_token(claims: dict) -> str:
    """A JWT-shaped token. Unsigned (the SDK decodes it without verifying)."""
    header = {"alg": "RS256", "typ": "JWT", "kid": "local-standin"}
    return ".".join([_b64url(json.dumps(header).encode()), _b64url(json.dumps(claims).encode()),
                     _b64url(b"local-standin-not-a-signature")])


def key_sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class Request:
    """What a handler needs: method, path, query (dict of lists), headers, raw body."""

    def __init__(self, method, path, query, headers, body):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.caller = None

    def params(self, allowed: set, required: tuple = ()) -> dict:
        unknown = sorted(set(self.query) - allowed)
        if unknown:
            raise HttpError(400, "invalid_query_parameter",
                            "Unknown query parameter(s): %s" % ", ".join(unknown))
        values = {}
        for name, items in self.query.items():
            if len(items) != 1:
                raise HttpError(400, "invalid_query_parameter", "Query parameter %s given more than once" % name)
            values[name] = items[0]
        for name in required:
            if not values.get(name):
                raise HttpError(400, "missing_query_parameter", "Query parameter %s is required" % name)
        return values

    def json(self, allowed: set, required: tuple = ()) -> dict:
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise HttpError(415, "unsupported_media_type",
                            "Content-Type must be application/json, got %r" % (content_type or None))
        try:
            document = json.loads(self.body.decode("utf-8") or "null")
        except (ValueError, UnicodeDecodeError):
            raise HttpError(400, "invalid_body", "The request body is not valid JSON") from None
        if not isinstance(document, dict):
            raise HttpError(400, "invalid_body", "The request body must be a JSON object")
        unknown = sorted(set(document) - allowed)
        if unknown:
            raise HttpError(400, "invalid_body", "Unknown field(s) in request body: %s" % ", ".join(unknown))
        for name in required:
            if document.get(name) in (None, "", [], {}):
                raise HttpError(400, "missing_field", "Field %s is required" % name)
        return document


def _int_param(values, name, default, low, high):
    if name not in values:
        return default
    try:
        number = int(values[name])
    except ValueError:
        raise HttpError(400, "invalid_query_parameter", "%s must be an integer" % name) from None
    if not low <= number <= high:
        raise HttpError(400, "invalid_query_parameter", "%s must be between %d and %d" % (name, low, high))
    return number


class IamState:
    """Everything the stand-in knows. All access under self.lock."""

    def __init__(self):
        self.lock = threading.RLock()
        self.admin_keys = {}  # value -> {"account_id", "iam_id"}
        self.reset()

    def reset(self):
        with self.lock:
            self.tokens = {}        # access token -> caller
            self.service_ids = {}   # id -> record
            self.api_keys = {}      # id -> record (with "_value", never served after create)
            self.policies = {}      # id -> record (with "_etag")
            self.page_tokens = {}   # token -> offset
            self.faults = []
            self.log = []
            self.seq = 0

    # --- helpers -------------------------------------------------------------------------

    def page(self, items, size, token):
        offset = 0
        if token is not None:
            if token not in self.page_tokens:
                raise HttpError(400, "invalid_page_token", "The page token is not valid")
            offset = self.page_tokens[token]
        chunk = items[offset:offset + size]
        next_token = None
        if offset + size < len(items):
            next_token = secrets.token_urlsafe(12)
            self.page_tokens[next_token] = offset + size
        return offset, chunk, next_token

    def etag(self, record):
        return "%d-%s" % (record["_version"], hashlib.sha1(
            json.dumps({k: v for k, v in record.items() if not k.startswith("_")},
                       sort_keys=True).encode()).hexdigest()[:16])


class IamStandIn(BackgroundServer):
    """The server plus in-process test helpers; start()/stop() or a with block."""

    def __init__(self, host="127.0.0.1", port=0):
        self.state = IamState()

        class Handler(_Handler):
            pass

        Handler.state = self.state
        super().__init__(Handler, "iam-standin", host, port)
        Handler.base_url = self.url

    def fresh_admin_key(self, prefix="CANARY-"):
        """Forget everything, then know one admin key (a canary value tests look for)."""
        self.reset()
        key = prefix + secrets.token_urlsafe(24)
        self.add_admin_key(key)
        return key

    # test helpers
    def add_admin_key(self, apikey, account_id=DEFAULT_ACCOUNT, iam_id="IBMid-standin-admin"):
        with self.state.lock:
            self.state.admin_keys[apikey] = {"account_id": account_id, "iam_id": iam_id}

    def reset(self):
        self.state.reset()

    def inject_fault(self, method, path, status, count=1, retry_after=None, skip=0):
        """The next ``count`` matching requests fail, after ``skip`` of them went through."""
        with self.state.lock:
            self.state.faults.append({"method": method.upper(), "path": path, "status": int(status),
                                      "count": int(count), "retry_after": retry_after, "skip": int(skip)})

    def requests(self):
        with self.state.lock:
            return copy.deepcopy(self.state.log)

    def mark(self):
        with self.state.lock:
            return self.state.seq

    def writes(self, since=0):
        """Successful or not, every POST/PUT/PATCH/DELETE to the IAM API after ``since``."""
        return [entry for entry in self.requests() if entry["seq"] > since and entry["write"]]

    def snapshot(self):
        with self.state.lock:
            return _snapshot(self.state)

    def create_api_key_directly(self, iam_id, name, description=None, account_id=DEFAULT_ACCOUNT):
        """A key made by 'someone else' (not through the collection); returns (id, value)."""
        with self.state.lock:
            record = _new_api_key(self.state, {"name": name, "iam_id": iam_id, "description": description,
                                               "account_id": account_id}, "IBMid-someone-else")
            return record["id"], record["_value"]

    def backdate_service_id(self, sid, days):
        """Make a service ID look created ``days`` ago, as one made by hand long before."""
        with self.state.lock:
            when = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days)
            self.state.service_ids[sid]["created_at"] = when.strftime("%Y-%m-%dT%H:%M+0000")

    def create_policy_directly(self, body, account_id=DEFAULT_ACCOUNT):
        with self.state.lock:
            caller = {"account_id": account_id, "iam_id": "IBMid-someone-else"}
            return _store_policy(self.state, self.url, _validate_policy(self.state, body, caller), caller)["id"]


def _snapshot(state):
    keys = []
    for record in state.api_keys.values():
        shown = {k: v for k, v in record.items() if not k.startswith("_") and k != "apikey"}
        shown["sha256"] = key_sha256(record["_value"])
        keys.append(shown)
    return {
        "service_ids": [_public(r) for r in state.service_ids.values()],
        "api_keys": keys,
        "policies": [_public(r) for r in state.policies.values()],
    }


def _public(record):
    return {k: copy.deepcopy(v) for k, v in record.items() if not k.startswith("_")}


# --- identity ------------------------------------------------------------------------------


def _service_id_view(state, record):
    view = _public(record)
    view["entity_tag"] = state.etag(record)
    return view


def _api_key_view(state, record, with_value=False):
    view = _public(record)
    view["entity_tag"] = state.etag(record)
    # The value is returned once, on create; reads carry an empty string.
    view["apikey"] = record["_value"] if with_value else ""
    return view


def _new_api_key(state, body, created_by):
    iam_id = body["iam_id"]
    owner = [s for s in state.service_ids.values() if s["iam_id"] == iam_id]
    if not owner and not any(a["iam_id"] == iam_id for a in state.admin_keys.values()):
        raise HttpError(404, "not_found", "Identity %s not found" % iam_id)
    account_id = body.get("account_id") or (owner[0]["account_id"] if owner else DEFAULT_ACCOUNT)
    if sum(1 for k in state.api_keys.values() if k["iam_id"] == iam_id) >= MAX_KEYS_PER_IDENTITY:
        raise HttpError(400, "limit_exceeded", "The identity %s already has %d API keys"
                        % (iam_id, MAX_KEYS_PER_IDENTITY))
    key_id = "ApiKey-" + str(uuid.uuid4())
    now = _identity_time()
    record = {
        "id": key_id,
        "crn": "crn:v1:bluemix:public:iam-identity::a/%s::apikey:%s" % (account_id, key_id),
        "locked": False,
        "disabled": False,
        "created_at": now,
        "created_by": created_by,
        "modified_at": now,
        "name": body["name"],
        "iam_id": iam_id,
        "account_id": account_id,
        "support_sessions": bool(body.get("support_sessions", False)),
        "action_when_leaked": body.get("action_when_leaked") or "none",
        "_value": secrets.token_urlsafe(33),
        "_version": 1,
    }
    if body.get("description"):
        record["description"] = body["description"]
    state.api_keys[key_id] = record
    return record


def _check_if_match(request, state, record):
    if_match = request.headers.get("If-Match")
    if not if_match:
        raise HttpError(400, "missing_header", "Header If-Match is required")
    if if_match != "*" and if_match != state.etag(record):
        raise HttpError(409, "conflict", "The entity tag in If-Match is out of date")


def _list_response(base_url, path, values, offset, limit, token, key, items):
    response = {"offset": offset, "limit": limit, key: items,
                "first": base_url + path + "?" + urlencode({k: v for k, v in values.items() if k != "pagetoken"})}
    if token:
        nxt = dict(values, pagetoken=token)
        response["next"] = base_url + path + "?" + urlencode(nxt)
    return response


def h_service_ids(request, state, base_url):
    if request.method == "GET":
        values = request.params(SERVICE_ID_LIST_PARAMS)
        if not values.get("account_id") and not values.get("pagetoken"):
            raise HttpError(400, "missing_query_parameter", "account_id is required")
        if values.get("account_id") and values["account_id"] != request.caller["account_id"]:
            raise HttpError(403, "forbidden", "Not authorized to list service IDs of account %s"
                            % values["account_id"])
        size = _int_param(values, "pagesize", 20, 1, 100)
        items = sorted((s for s in state.service_ids.values()
                        if s["account_id"] == request.caller["account_id"]
                        and ("name" not in values or s["name"] == values["name"])),
                       key=lambda s: (s["created_at"], s["id"]))
        offset, chunk, token = state.page(items, size, values.get("pagetoken"))
        return 200, _list_response(base_url, "/v1/serviceids/", values, offset, size, token, "serviceids",
                                   [_service_id_view(state, s) for s in chunk])
    if request.method == "POST":
        request.params(SERVICE_ID_CREATE_PARAMS)
        body = request.json(SERVICE_ID_CREATE_FIELDS, required=("account_id", "name"))
        if body["account_id"] != request.caller["account_id"]:
            raise HttpError(403, "forbidden", "Not authorized to create service IDs in account %s"
                            % body["account_id"])
        if not isinstance(body["name"], str) or len(body["name"]) > 255:
            raise HttpError(400, "invalid_body", "name must be a string of at most 255 characters")
        sid = "ServiceId-" + str(uuid.uuid4())
        now = _identity_time()
        record = {
            "id": sid, "iam_id": "iam-" + sid,
            "crn": "crn:v1:bluemix:public:iam-identity::a/%s::serviceid:%s" % (body["account_id"], sid),
            "locked": False, "created_at": now, "modified_at": now,
            "account_id": body["account_id"], "name": body["name"],
            "unique_instance_crns": list(body.get("unique_instance_crns") or []),
            "_version": 1,
        }
        if body.get("description") is not None:
            record["description"] = body["description"]
        state.service_ids[sid] = record
        return 201, _service_id_view(state, record)
    raise HttpError(405, "method_not_allowed", "Method not allowed")


def _record_endpoint(request, state, records, record_id, what, view, params, on_delete=None):
    """GET, PUT (If-Match, then the fields set) and DELETE of one record of the caller's
    account; a record of another account is not found, as IAM says it.
    ``params``: (GET query parameters, PUT query parameters, PUT body fields)."""
    get_params, update_params, update_fields = params
    record = records.get(record_id)
    if record is None or record["account_id"] != request.caller["account_id"]:
        raise HttpError(404, "not_found", "%s %s not found" % (what, record_id))
    if request.method == "GET":
        request.params(get_params)
        return 200, view(state, record)
    if request.method == "PUT":
        request.params(update_params)
        _check_if_match(request, state, record)
        body = request.json(update_fields)
        for field in update_fields:
            if field in body:
                record[field] = body[field]
        record["modified_at"] = _identity_time()
        record["_version"] += 1
        return 200, view(state, record)
    if request.method == "DELETE":
        request.params(set())
        if record["locked"]:
            raise HttpError(400, "locked", "%s %s is locked" % (what, record_id))
        del records[record_id]
        if on_delete:
            on_delete(record)
        return 204, None
    raise HttpError(405, "method_not_allowed", "Method not allowed")


def h_service_id(request, state, base_url, sid):
    del base_url

    def deleted(record):
        # IAM deletes a service ID's API keys with it, and its policies.
        for key_id in [k for k, v in state.api_keys.items() if v["iam_id"] == record["iam_id"]]:
            del state.api_keys[key_id]
        for pid in [p for p, v in state.policies.items() if _subject_iam_id(v) == record["iam_id"]]:
            del state.policies[pid]

    return _record_endpoint(request, state, state.service_ids, sid, "Service ID", _service_id_view,
                            (SERVICE_ID_GET_PARAMS, SERVICE_ID_UPDATE_PARAMS, SERVICE_ID_UPDATE_FIELDS), deleted)


def h_api_keys(request, state, base_url):
    if request.method == "GET":
        values = request.params(API_KEY_LIST_PARAMS)
        account = values.get("account_id") or request.caller["account_id"]
        if account != request.caller["account_id"]:
            raise HttpError(403, "forbidden", "Not authorized to list API keys of account %s" % account)
        if values.get("scope", "entity") not in ("entity", "account"):
            raise HttpError(400, "invalid_query_parameter", "scope must be entity or account")
        if values.get("type") not in (None, "user", "serviceid"):
            raise HttpError(400, "invalid_query_parameter", "type must be user or serviceid")
        size = _int_param(values, "pagesize", 20, 1, 100)
        iam_id = values.get("iam_id")
        if iam_id is None and values.get("scope", "entity") == "entity":
            iam_id = request.caller["iam_id"]
        items = sorted((k for k in state.api_keys.values()
                        if k["account_id"] == account and (iam_id is None or k["iam_id"] == iam_id)),
                       key=lambda k: (k["created_at"], k["id"]))
        offset, chunk, token = state.page(items, size, values.get("pagetoken"))
        return 200, _list_response(base_url, "/v1/apikeys", values, offset, size, token, "apikeys",
                                   [_api_key_view(state, k) for k in chunk])
    if request.method == "POST":
        request.params(set())
        body = request.json(API_KEY_CREATE_FIELDS, required=("name", "iam_id"))
        if body.get("account_id") and body["account_id"] != request.caller["account_id"]:
            raise HttpError(403, "forbidden", "Not authorized to create API keys in account %s" % body["account_id"])
        if body.get("apikey"):
            raise HttpError(400, "invalid_body", "Importing an API key value is not supported by this stand-in")
        if body.get("action_when_leaked") not in (None, "none", "disable", "delete"):
            raise HttpError(400, "invalid_body", "action_when_leaked must be none, disable or delete")
        record = _new_api_key(state, body, request.caller["iam_id"])
        return 201, _api_key_view(state, record, with_value=True)
    raise HttpError(405, "method_not_allowed", "Method not allowed")


def h_api_key_details(request, state, base_url):
    del base_url
    if request.method != "GET":
        raise HttpError(405, "method_not_allowed", "Method not allowed")
    request.params(API_KEY_DETAILS_PARAMS)
    value = request.headers.get("IAM-ApiKey")
    if not value:
        raise HttpError(400, "missing_header", "Header IAM-ApiKey is required")
    for record in state.api_keys.values():
        if secrets.compare_digest(record["_value"], value):
            return 200, _api_key_view(state, record)
    raise HttpError(404, "not_found", "API key not found")


def h_api_key(request, state, base_url, key_id):
    del base_url
    return _record_endpoint(request, state, state.api_keys, key_id, "API key", _api_key_view,
                            (API_KEY_GET_PARAMS, set(), API_KEY_UPDATE_FIELDS))


# --- policies v2 -----------------------------------------------------------------------------


def _subject_iam_id(policy):
    for attribute in (policy.get("subject") or {}).get("attributes") or []:
        if attribute.get("key") == "iam_id":
            return attribute.get("value")
    return None


def _resource_value(policy, key):
    for attribute in (policy.get("resource") or {}).get("attributes") or []:
        if attribute.get("key") == key:
            return attribute.get("value")
    return None


def _valid_roles(service_name):
    roles = ["crn:v1:bluemix:public:iam::::role:%s" % r for r in PLATFORM_ROLES]
    roles += ["crn:v1:bluemix:public:%s::::serviceRole:%s" % (service_name, r)
              for r in SERVICE_ROLES.get(service_name, ())]
    return roles


def _attributes(section, name, required=True):
    if not isinstance(section, dict):
        raise HttpError(400, "invalid_body", "%s must be an object" % name)
    attributes = section.get("attributes")
    if not isinstance(attributes, list) or (required and not attributes):
        raise HttpError(400, "invalid_body", "%s.attributes must be a non-empty list" % name)
    keys = set()
    for attribute in attributes:
        if not isinstance(attribute, dict) or set(attribute) != {"key", "operator", "value"}:
            raise HttpError(400, "invalid_body", "%s.attributes entries need exactly key, operator and value"
                            % name)
        if attribute["key"] in keys:
            raise HttpError(400, "invalid_body", "%s.attributes has %s twice" % (name, attribute["key"]))
        keys.add(attribute["key"])
        value = attribute["value"]
        if attribute["operator"] == "stringExists":
            if not isinstance(value, bool):
                raise HttpError(400, "invalid_body", "stringExists takes a boolean value")
        elif not isinstance(value, str) or not 1 <= len(value) <= 1000:
            raise HttpError(400, "invalid_body", "Policy attribute values must be 1 to 1000 characters")
    return attributes


def _validate_policy(state, body, caller):
    if body.get("type") != "access":
        raise HttpError(400, "invalid_body", "type must be access")
    control = body.get("control")
    roles = (((control or {}).get("grant") or {}).get("roles")) if isinstance(control, dict) else None
    if not isinstance(roles, list) or not roles:
        raise HttpError(400, "invalid_body", "control.grant.roles must be a non-empty list")
    subject = _attributes(body.get("subject"), "subject")
    if len(subject) != 1 or subject[0]["key"] not in ("iam_id", "access_group_id") \
            or subject[0]["operator"] != "stringEquals":
        raise HttpError(400, "invalid_body", "subject needs one iam_id or access_group_id attribute with "
                        "operator stringEquals")
    if subject[0]["key"] == "iam_id":
        iam_id = subject[0]["value"]
        known = any(s["iam_id"] == iam_id for s in state.service_ids.values()) or \
            any(a["iam_id"] == iam_id for a in state.admin_keys.values())
        if not known:
            raise HttpError(400, "invalid_body", "subject iam_id %s does not exist" % iam_id)
    resource = body.get("resource")
    attributes = _attributes(resource, "resource")
    if set(resource) - {"attributes", "tags"}:
        raise HttpError(400, "invalid_body", "resource takes attributes and tags only")
    by_key = {a["key"]: a for a in attributes}
    for attribute in attributes:
        if attribute["operator"] not in RESOURCE_OPERATORS:
            raise HttpError(400, "invalid_body", "Unsupported operator %s" % attribute["operator"])
    if "accountId" not in by_key:
        raise HttpError(400, "invalid_body", "resource attributes must include accountId")
    if by_key["accountId"]["value"] != caller["account_id"]:
        raise HttpError(403, "forbidden", "Not authorized to create policies in account %s"
                        % by_key["accountId"]["value"])
    if not {"serviceName", "serviceType", "resourceGroupId", "service_group_id"} & set(by_key):
        raise HttpError(400, "invalid_body", "resource attributes must include serviceName, serviceType, "
                        "resourceGroupId or service_group_id")
    service = by_key.get("serviceName", {}).get("value")
    if "region" in by_key and by_key["region"]["value"] not in IAM_REGIONS:
        raise HttpError(400, "invalid_body", "region %s is not a valid location" % by_key["region"]["value"])
    if "resource" in by_key and "resourceType" not in by_key:
        raise HttpError(400, "invalid_body", "resource attribute resource needs resourceType")
    valid = _valid_roles(service)
    for role in roles:
        if not isinstance(role, dict) or set(role) != {"role_id"} or role["role_id"] not in valid:
            raise HttpError(400, "invalid_body", "Invalid role %r for service %s" % (role, service))
    if body.get("description") is not None and len(body["description"]) > 300:
        raise HttpError(400, "invalid_body", "description must be at most 300 characters")
    return body


def _scope_key(policy):
    subject = tuple(sorted((a["key"], a["operator"], str(a["value"])) for a in policy["subject"]["attributes"]))
    resource = tuple(sorted((a["key"], a["operator"], str(a["value"])) for a in policy["resource"]["attributes"]))
    return subject, resource


def _store_policy(state, base_url, body, caller, existing=None):
    key = _scope_key(body)
    for other in state.policies.values():
        if other["state"] == "active" and (existing is None or other["id"] != existing["id"]) \
                and _scope_key(other) == key:
            raise HttpError(409, "policy_conflict_error",
                            "Failed to create policy: a policy with the same subject and resource "
                            "already exists (%s)" % other["id"], headers={})
    now = _policy_time()
    record = existing or {"id": str(uuid.uuid4()), "created_at": now, "created_by_id": caller["iam_id"],
                          "_version": 0}
    record.update({
        "type": body["type"],
        "subject": copy.deepcopy(body["subject"]),
        "resource": copy.deepcopy(body["resource"]),
        "control": {"grant": {"roles": [{"role_id": r["role_id"], "display_name": r["role_id"].rsplit(":", 1)[-1]}
                                        for r in body["control"]["grant"]["roles"]]}},
        "href": "%s/v2/policies/%s" % (base_url, record["id"]),
        "last_modified_at": now,
        "last_modified_by_id": caller["iam_id"],
        "state": "active",
    })
    for optional in ("description", "pattern", "rule"):
        if body.get(optional) is not None:
            record[optional] = copy.deepcopy(body[optional])
        else:
            record.pop(optional, None)
    record["_version"] += 1
    state.policies[record["id"]] = record
    return record


def h_policies(request, state, base_url):
    if request.method == "GET":
        values = request.params(POLICY_LIST_PARAMS, required=("account_id",))
        if values["account_id"] != request.caller["account_id"]:
            raise HttpError(403, "forbidden", "Not authorized to list policies of account %s" % values["account_id"])
        if values.get("state", "active") not in ("active", "deleted"):
            raise HttpError(400, "invalid_query_parameter", "state must be active or deleted")
        if values.get("type") not in (None, "access", "authorization"):
            raise HttpError(400, "invalid_query_parameter", "type must be access or authorization")
        limit = _int_param(values, "limit", 50, 1, 100)
        items = []
        for policy in sorted(state.policies.values(), key=lambda p: (p["created_at"], p["id"])):
            if policy["state"] != values.get("state", "active"):
                continue
            if _resource_value(policy, "accountId") != values["account_id"]:
                continue
            if "iam_id" in values and _subject_iam_id(policy) != values["iam_id"]:
                continue
            if "type" in values and policy["type"] != values["type"]:
                continue
            if "service_name" in values and _resource_value(policy, "serviceName") != values["service_name"]:
                continue
            items.append(policy)
        offset, chunk, token = state.page(items, limit, values.get("start"))
        del offset
        query = {k: v for k, v in values.items() if k != "start"}
        response = {"limit": limit, "first": {"href": base_url + "/v2/policies?" + urlencode(query)},
                    "policies": [_public(p) for p in chunk]}
        if token:
            response["next"] = {"href": base_url + "/v2/policies?" + urlencode(dict(query, start=token)),
                                "start": token}
        return 200, response
    if request.method == "POST":
        request.params(set())
        body = request.json(POLICY_FIELDS, required=("control", "type"))
        record = _store_policy(state, base_url, _validate_policy(state, body, request.caller), request.caller)
        return 201, _public(record), {"ETag": state.etag(record)}
    raise HttpError(405, "method_not_allowed", "Method not allowed")


def h_policy(request, state, base_url, pid):
    record = state.policies.get(pid)
    if record is None or _resource_value(record, "accountId") != request.caller["account_id"]:
        raise HttpError(404, "policy_not_found", "Policy %s not found" % pid)
    if request.method == "GET":
        request.params(POLICY_GET_PARAMS)
        return 200, _public(record), {"ETag": state.etag(record)}
    if request.method == "PUT":
        request.params(set())
        if_match = request.headers.get("If-Match")
        if not if_match:
            raise HttpError(400, "missing_header", "Header If-Match is required")
        if if_match != "*" and if_match != state.etag(record):
            raise HttpError(412, "precondition_failed", "The ETag in If-Match is out of date")
        body = request.json(POLICY_FIELDS, required=("control", "type"))
        _validate_policy(state, body, request.caller)
        if _subject_iam_id(body) != _subject_iam_id(record):
            raise HttpError(400, "invalid_body", "The subject of a policy cannot be changed")
        record = _store_policy(state, base_url, body, request.caller, existing=record)
        return 200, _public(record), {"ETag": state.etag(record)}
    if request.method == "DELETE":
        request.params(set())
        del state.policies[pid]
        return 204, None
    raise HttpError(405, "method_not_allowed", "Method not allowed")


# --- token ---------------------------------------------------------------------------------


def h_token(request, state, base_url):
    del base_url
    if request.method != "POST":
        raise HttpError(405, "method_not_allowed", "Method not allowed")
    request.params(set())
    content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise HttpError(400, "BXNIM0109E", "Content-Type must be application/x-www-form-urlencoded")
    form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8"), keep_blank_values=True).items()}
    if form.get("grant_type") != GRANT_TYPE_APIKEY:
        raise HttpError(400, "BXNIM0109E", "Property missing or empty: grant_type")
    if not form.get("apikey"):
        raise HttpError(400, "BXNIM0109E", "Property missing or empty: apikey")
    value = form["apikey"]
    caller = state.admin_keys.get(value)
    if caller is None:
        for record in state.api_keys.values():
            if secrets.compare_digest(record["_value"], value) and not record["disabled"]:
                caller = {"account_id": record["account_id"], "iam_id": record["iam_id"]}
    if caller is None:
        raise HttpError(400, "BXNIM0415E", "Provided API key could not be found.")
    now = int(time.time())
    claims = {"iam_id": caller["iam_id"], "id": caller["iam_id"], "sub": caller["iam_id"],
              "account": {"bss": caller["account_id"], "valid": True}, "iat": now, "exp": now + TOKEN_TTL,
              "iss": "local-iam-standin", "grant_type": GRANT_TYPE_APIKEY, "scope": "ibm openid"}
    token = make_token(claims)
    state.tokens[token] = dict(caller, exp=now + TOKEN_TTL)
    # Who logged in (an identity, never a key), for tests of when a key was first used.
    state.log[-1]["iam_id"] = caller["iam_id"]
    return 200, {"access_token": token, "refresh_token": "not_supported", "ims_user_id": 0,
                 "token_type": "Bearer", "expires_in": TOKEN_TTL, "expiration": now + TOKEN_TTL,
                 "scope": "ibm openid"}


# --- HTTP plumbing -------------------------------------------------------------------------


ROUTES = [
    (re.compile(r"^/identity/token$"), h_token, False),
    (re.compile(r"^/v1/serviceids/?$"), h_service_ids, True),
    (SERVICE_ID_PATH, h_service_id, True),
    (re.compile(r"^/v1/apikeys/details$"), h_api_key_details, True),
    (re.compile(r"^/v1/apikeys/?$"), h_api_keys, True),
    (API_KEY_PATH, h_api_key, True),
    (re.compile(r"^/v2/policies/?$"), h_policies, True),
    (POLICY_PATH, h_policy, True),
]


class _Handler(BaseHTTPRequestHandler):
    state: IamState = None
    base_url = ""
    protocol_version = "HTTP/1.1"
    server_version = "LocalIamStandIn/1.0"

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass  # quiet; the request log is in state.log

    def _send(self, status, document, headers=None, tid=None):
        body = b"" if document is None else json.dumps(document).encode("utf-8")
        self.send_response(status)
        if document is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if tid:
            self.send_header("Transaction-Id", tid)
            self.send_header("X-Global-Transaction-Id", tid)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _handle(self):
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        query = parse_qs(split.query, keep_blank_values=True)
        path = split.path
        if path.startswith("/_standin/"):
            return self._control(path, body)
        tid = "standin-" + uuid.uuid4().hex[:16]
        state = self.state
        with state.lock:
            state.seq += 1
            entry = {"seq": state.seq, "time": time.time(), "method": self.command, "path": path,
                     "query": sorted(query), "status": None, "transaction_id": tid,
                     "write": self.command in WRITE_METHODS and path != "/identity/token"}
            state.log.append(entry)
            try:
                for fault in state.faults:
                    if fault["count"] > 0 and fault["method"] == self.command and path.startswith(fault["path"]):
                        if fault.get("skip", 0) > 0:
                            fault["skip"] -= 1
                            continue
                        fault["count"] -= 1
                        extra = {"Retry-After": str(fault["retry_after"])} if fault.get("retry_after") else {}
                        raise HttpError(fault["status"], "injected_fault",
                                        "Injected fault %d by the test" % fault["status"], headers=extra)
                request = Request(self.command, path, query, self.headers, body)
                for pattern, handler, needs_auth in ROUTES:
                    match = pattern.match(path)
                    if not match:
                        continue
                    if needs_auth:
                        request.caller = self._authenticate()
                    result = handler(request, state, self.base_url, *match.groups())
                    status, document = result[0], result[1]
                    headers = result[2] if len(result) > 2 else None
                    break
                else:
                    raise HttpError(404, "not_found", "No such endpoint: %s %s" % (self.command, path))
            except HttpError as exc:
                status, headers = exc.status, exc.headers
                document = self._error(exc, tid, path)
            entry["status"] = status
        self._send(status, document, headers, tid)
        return None

    def _error(self, exc, tid, path):
        if path == "/identity/token":
            return {"errorCode": exc.code, "errorMessage": exc.message,
                    "context": {"requestId": tid}}
        return {"trace": tid, "status_code": exc.status,
                "errors": [{"code": exc.code, "message": exc.message}],
                "context": {"transaction_id": tid}}

    def _authenticate(self):
        header = self.headers.get("Authorization") or ""
        if not header.startswith("Bearer "):
            raise HttpError(401, "unauthorized", "Authorization header with a Bearer token is required")
        caller = self.state.tokens.get(header[len("Bearer "):])
        if caller is None or caller["exp"] < time.time():
            raise HttpError(401, "unauthorized", "The access token is not valid or has expired")
        return caller

    def _control(self, path, body):
        state = self.state
        try:
            document = json.loads(body.decode("utf-8") or "{}")
        except ValueError:
            return self._send(400, {"error": "body must be JSON"})
        with state.lock:
            if path == "/_standin/faults" and self.command == "POST":
                state.faults.append({"method": document.get("method", "GET").upper(),
                                     "path": document["path"], "status": int(document["status"]),
                                     "count": int(document.get("count", 1)),
                                     "retry_after": document.get("retry_after"),
                                     "skip": int(document.get("skip", 0))})
                return self._send(200, {"faults": state.faults})
            if path == "/_standin/requests" and self.command == "GET":
                return self._send(200, {"requests": state.log})
            if path == "/_standin/state" and self.command == "GET":
                return self._send(200, _snapshot(state))
            if path == "/_standin/reset" and self.command == "POST":
                state.reset()
                return self._send(200, {"reset": True})
            if path == "/_standin/admin-keys" and self.command == "POST":
                state.admin_keys[document["apikey"]] = {
                    "account_id": document.get("account_id", DEFAULT_ACCOUNT),
                    "iam_id": document.get("iam_id", "IBMid-standin-admin")}
                return self._send(200, {"admin_keys": len(state.admin_keys)})
        return self._send(404, {"error": "unknown control %s %s" % (self.command, path)})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


def main(argv=None):
    parser = argparse.ArgumentParser(description="LOCAL STAND-IN for IBM Cloud IAM (tests only; not IBM's service)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--print-url", action="store_true", help="print the base URL once listening")
    parser.add_argument("--account-id", default=DEFAULT_ACCOUNT)
    parser.add_argument("--admin-key-env", default="IAM_STANDIN_ADMIN_KEY",
                        help="environment variable holding the API key that may call the stand-in")
    args = parser.parse_args(argv)
    server = IamStandIn(args.host, args.port)
    if os.environ.get(args.admin_key_env):
        server.add_admin_key(os.environ[args.admin_key_env], account_id=args.account_id)
    if args.print_url:
        print(server.url, flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
