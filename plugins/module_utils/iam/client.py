# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one IBM Cloud IAM client layer: authentication options in, IAM calls out.

Options (doc fragment ``ibmcloud.registry.ibmcloud_auth``): ``ibmcloud_api_key`` (or
``IC_API_KEY`` / ``IBMCLOUD_API_KEY``), ``account_id`` (or the account of the
key's token), ``iam_url`` / ``iam_endpoint`` for the token and API URLs, and
``iam_retries``. Every IAM request of this collection goes through
:meth:`IamClient.call`: bounded retries on 429, 5xx and dropped connections (honouring
``Retry-After``; the SDK's own retries stay off, and its ``RetryError`` is handled
too), and :class:`IamError` messages that name the call, the status and IAM's
transaction ID, and never a key (every key the client has seen is scrubbed from
them).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import logging
import re
import time

from ansible.module_utils.basic import env_fallback
from ansible_collections.ibmcloud.registry.plugins.module_utils.common.argspec import ArgumentSpec
from ansible_collections.ibmcloud.registry.plugins.module_utils.common.redaction import REDACTED
from ansible_collections.ibmcloud.registry.plugins.module_utils.common.retry_delay import retry_delay

try:
    import jwt  # PyJWT, which ibm-cloud-sdk-core itself depends on
    import requests
    from ibm_cloud_sdk_core import ApiException, get_query_param
    from ibm_cloud_sdk_core.authenticators import IAMAuthenticator
    from ibm_platform_services import IamIdentityV1, IamPolicyManagementV1

    HAS_IBM_SDK = True
    IBM_SDK_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by require_ibm_sdk()
    HAS_IBM_SDK = False
    IBM_SDK_IMPORT_ERROR = exc
    ApiException = type("_Unavailable", (Exception,), {})
    requests = None

from ansible_collections.ibmcloud.registry.plugins.module_utils.iam.plan import (
    PlanError,
    account_id_error,
    first_created,
    is_service_id_id,
    pick_service_id,
    recent_duplicates,
)

PUBLIC_IAM_URL = "https://iam.cloud.ibm.com"
PRIVATE_IAM_URL = "https://private.iam.cloud.ibm.com"
API_KEY_ENV = ["IC_API_KEY", "IBMCLOUD_API_KEY"]
RETRYABLE_STATUS = frozenset([429, 500, 502, 503, 504])
MAX_RETRY_AFTER = 60.0
PAGE_SIZE = 100
MAX_PAGES = 1000
# Re-reads, a second apart, while two service IDs of one name are a concurrent create.
SETTLE_ATTEMPTS = 15


def iam_argument_spec():
    """How the IAM modules reach IBM Cloud. Doc fragment: ibmcloud.registry.ibmcloud_auth."""
    return ArgumentSpec(dict(
        ibmcloud_api_key=dict(type="str", no_log=True, fallback=(env_fallback, API_KEY_ENV)),
        account_id=dict(type="str"),
        iam_url=dict(type="str"),
        iam_endpoint=dict(type="str", choices=["public", "private"], default="public"),
        iam_retries=dict(type="int", default=5),
    ))


# SDK method -> (client attribute, HTTP request) for messages.
OPERATIONS = {
    "list_service_ids": ("identity", "GET /v1/serviceids/"),
    "create_service_id": ("identity", "POST /v1/serviceids/"),
    "get_service_id": ("identity", "GET /v1/serviceids/{id}"),
    "update_service_id": ("identity", "PUT /v1/serviceids/{id}"),
    "delete_service_id": ("identity", "DELETE /v1/serviceids/{id}"),
    "list_api_keys": ("identity", "GET /v1/apikeys"),
    "create_api_key": ("identity", "POST /v1/apikeys"),
    "get_api_keys_details": ("identity", "GET /v1/apikeys/details"),
    "get_api_key": ("identity", "GET /v1/apikeys/{id}"),
    "update_api_key": ("identity", "PUT /v1/apikeys/{id}"),
    "delete_api_key": ("identity", "DELETE /v1/apikeys/{id}"),
    "list_v2_policies": ("policy", "GET /v2/policies"),
    "create_v2_policy": ("policy", "POST /v2/policies"),
    "get_v2_policy": ("policy", "GET /v2/policies/{id}"),
    "replace_v2_policy": ("policy", "PUT /v2/policies/{id}"),
    "delete_v2_policy": ("policy", "DELETE /v2/policies/{id}"),
}
WRITE_OPERATIONS = frozenset(name for name, (_svc, http) in OPERATIONS.items()
                             if http.split(" ", 1)[0] in ("POST", "PUT", "DELETE"))

_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$")


class IamError(Exception):
    """An IAM call that failed for good. ``status`` is the HTTP status or None."""

    def __init__(self, message, status=None, transaction_id=None, operation=None):
        super(IamError, self).__init__(message)
        self.status = status
        self.transaction_id = transaction_id
        self.operation = operation


def require_ibm_sdk(module):
    """Fail the module early when the IBM Cloud SDK is missing."""
    if not HAS_IBM_SDK:
        from ansible.module_utils.basic import missing_required_lib

        module.fail_json(msg=missing_required_lib("ibm-platform-services"),
                         exception=str(IBM_SDK_IMPORT_ERROR))


def iam_base_url(params):
    """The IAM base URL: iam_url if given, else the public or private endpoint."""
    if params.get("iam_url"):
        return params["iam_url"].rstrip("/")
    return PRIVATE_IAM_URL if params.get("iam_endpoint") == "private" else PUBLIC_IAM_URL


def validate_iam_params(params):
    """Errors for the shared IAM options, before any request. Never shows the key."""
    errors = []
    key = params.get("ibmcloud_api_key")
    if not key:
        errors.append("ibmcloud_api_key is required (or set the IC_API_KEY or IBMCLOUD_API_KEY "
                      "environment variable)")
    elif key != key.strip() or key[0] in "{\"'" or key[-1] in "}\"'":
        errors.append("ibmcloud_api_key must not start or end with spaces, braces or quotes")
    problem = account_id_error(params.get("account_id"))
    if problem:
        errors.append(problem)
    if params.get("iam_url") and not _URL.match(params["iam_url"]):
        errors.append("iam_url %r must be a base URL such as https://iam.cloud.ibm.com "
                      "(scheme and host, no path)" % params["iam_url"])
    retries = params.get("iam_retries")
    if retries is not None and not 0 <= retries <= 10:
        errors.append("iam_retries must be between 0 and 10, got %s" % retries)
    return errors


def _retry_after(headers, attempt):
    """Seconds to wait before the next try of an IAM request."""
    return retry_delay(headers, attempt, base=0.5, cap=10.0, retry_after_cap=MAX_RETRY_AFTER)


def token_claims(token):
    """The claims of an IAM access token, or {} when it is not a JWT.

    Not verified, on purpose: the token comes straight from the IAM token endpoint over
    TLS (the SDK's own token manager reads it the same way), and only the account and
    the identity it names are read from it, never trusted for an access decision.
    """
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except (jwt.exceptions.InvalidTokenError, TypeError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


class IamClient:
    """IAM Identity and Policy Management with one retry policy and safe errors."""

    def __init__(self, api_key, base_url, retries=5, sleep=time.sleep, page_size=PAGE_SIZE):
        self.base_url = base_url
        self.retries = retries
        self.page_size = page_size
        self._sleep = sleep
        self._secrets = set([api_key]) if api_key else set()
        self.authenticator = IAMAuthenticator(api_key, url=base_url)
        # Constructed directly (not new_instance()), so no IAM_IDENTITY_* environment
        # configuration switches the SDK's own retries on under ours.
        self.identity = IamIdentityV1(authenticator=self.authenticator)
        self.identity.set_service_url(base_url)
        self.policy = IamPolicyManagementV1(authenticator=self.authenticator)
        self.policy.set_service_url(base_url)
        self.write_count = 0

    # --- safety --------------------------------------------------------------------------

    def add_secret(self, value):
        """Remember a key value so that no message of this client can carry it."""
        if value:
            self._secrets.add(value)

    def scrub(self, text):
        text = "%s" % (text,)
        for value in sorted(self._secrets, key=len, reverse=True):
            if value and value in text:
                text = text.replace(value, REDACTED)
        return text

    # --- calls ---------------------------------------------------------------------------

    def call(self, operation, **kwargs):
        """Run one SDK operation with bounded retries; the DetailedResponse, or IamError."""
        service, _http = OPERATIONS[operation]
        func = getattr(getattr(self, service), operation)
        if operation in WRITE_OPERATIONS:
            self.write_count += 1
        return self._retrying(operation, func, kwargs)

    def result(self, operation, **kwargs):
        return self.call(operation, **kwargs).get_result()

    def token(self):
        """The access token (one token exchange unless cached)."""
        return self._retrying("token", self.authenticator.token_manager.get_token, {})

    def _retrying(self, operation, func, kwargs):
        attempt = 0
        while True:
            try:
                return func(**kwargs)
            except ApiException as exc:
                response = getattr(exc, "http_response", None)
                if exc.status_code in RETRYABLE_STATUS and \
                        self._waited_to_retry(attempt, getattr(response, "headers", None)):
                    attempt += 1
                    continue
                raise self._api_error(operation, exc, attempt)
            except requests.exceptions.RetryError as exc:
                # The SDK's urllib3 retries (if anything enabled them) ran out.
                if self._waited_to_retry(attempt):
                    attempt += 1
                    continue
                raise IamError("IAM call %s failed: the service kept answering 429 or 5xx after %d "
                               "attempts (%s)" % (self._describe(operation), attempt + 1,
                                                  exc.__class__.__name__), status=429, operation=operation)
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                if self._waited_to_retry(attempt):
                    attempt += 1
                    continue
                raise IamError("IAM call %s failed: could not reach %s after %d attempts (%s)"
                               % (self._describe(operation), self.base_url, attempt + 1,
                                  exc.__class__.__name__), operation=operation)

    def _waited_to_retry(self, attempt, headers=None):
        """False when ``attempt`` was the last one; else True, after the pause before the next."""
        if attempt >= self.retries:
            return False
        self._before_retry()
        self._sleep(_retry_after(headers, attempt))
        return True

    def _before_retry(self):
        """Forget a failed token request: the SDK's token manager otherwise believes one
        is still in flight and makes the next caller wait up to 60 seconds for it."""
        manager = getattr(self.authenticator, "token_manager", None)
        if manager is not None:
            manager.request_time = 0

    @staticmethod
    def _describe(operation):
        if operation == "token":
            return "token exchange (POST /identity/token)"
        return "%s (%s)" % (operation, OPERATIONS[operation][1])

    def _api_error(self, operation, exc, attempt):
        response = getattr(exc, "http_response", None)
        headers = getattr(response, "headers", None) or {}
        transaction = exc.global_transaction_id or headers.get("Transaction-Id")
        url = getattr(getattr(response, "request", None), "url", "") or ""
        what = self._describe(operation)
        if operation != "token" and url.split("?")[0].endswith("/identity/token"):
            what = "token exchange (POST /identity/token) for %s" % operation
            operation = "token"
        detail = self.scrub(exc.message or "")
        message = "IAM call %s failed with status %s: %s" % (what, exc.status_code, detail)
        if transaction:
            message += " (transaction ID %s)" % transaction
        if attempt:
            message += " after %d attempts" % (attempt + 1)
        if operation == "token" and exc.status_code in (400, 401):
            message += "; check ibmcloud_api_key (or IC_API_KEY / IBMCLOUD_API_KEY) and iam_url"
        return IamError(message, status=exc.status_code, transaction_id=transaction, operation=operation)

    # --- paging --------------------------------------------------------------------------

    def _identity_pages(self, operation, key, **kwargs):
        items, seen = [], set()
        kwargs["pagesize"] = self.page_size
        for _page in range(MAX_PAGES):
            result = self.result(operation, **kwargs)
            items.extend(result.get(key) or [])
            token = get_query_param(result.get("next"), "pagetoken") if result.get("next") else None
            if not token or token in seen:
                return items
            seen.add(token)
            kwargs["pagetoken"] = token
        raise IamError("IAM call %s returned more than %d pages" % (self._describe(operation), MAX_PAGES),
                       operation=operation)

    def list_service_ids(self, account_id, name=None):
        kwargs = dict(account_id=account_id)
        if name is not None:
            kwargs["name"] = name
        return self._identity_pages("list_service_ids", "serviceids", **kwargs)

    def list_api_keys(self, account_id, iam_id):
        return self._identity_pages("list_api_keys", "apikeys", account_id=account_id, iam_id=iam_id)

    def list_registry_policies(self, account_id, iam_id):
        """v2 access policies of ``iam_id`` on Container Registry (all pages)."""
        items, seen = [], set()
        kwargs = dict(account_id=account_id, iam_id=iam_id, type="access",
                      service_name="container-registry", limit=self.page_size)
        for _page in range(MAX_PAGES):
            result = self.result("list_v2_policies", **kwargs)
            items.extend(result.get("policies") or [])
            token = (result.get("next") or {}).get("start")
            if not token or token in seen:
                return items
            seen.add(token)
            kwargs["start"] = token
        raise IamError("IAM call %s returned more than %d pages"
                       % (self._describe("list_v2_policies"), MAX_PAGES), operation="list_v2_policies")

    # --- lookups -------------------------------------------------------------------------

    def account_id(self, given=None):
        """The account: ``given``, else the one of the API key's token (``account.bss``)."""
        if given:
            return given
        account = (token_claims(self.token()).get("account") or {}).get("bss")
        if not account:
            raise IamError("account_id is not set and the IAM token names no account; set account_id")
        return account

    def find_service_id(self, account_id, ref):
        """The service ID named (or with the ID) ``ref``, or None. PlanError on duplicates."""
        if is_service_id_id(ref):
            try:
                return self.result("get_service_id", id=ref)
            except IamError as exc:
                if exc.status == 404:
                    return None
                raise
        # Duplicates that two runs just created settle within seconds (create_service_id).
        for attempt in range(SETTLE_ATTEMPTS):
            records = self.list_service_ids(account_id, name=ref)
            now = datetime.datetime.now(datetime.timezone.utc)
            if attempt == SETTLE_ATTEMPTS - 1 or not recent_duplicates(records, ref, now):
                return pick_service_id(records, ref, account_id)
            self._sleep(1)
        return None  # pragma: no cover

    def create_service_id(self, account_id, name, description=None):
        """Create a service ID called ``name``; if another run created one at the same time,
        keep the one both runs agree on (plan.first_created) and delete this run's.

        Returns (record, deleted ID or None)."""
        body = dict(account_id=account_id, name=name)
        if description is not None:
            body["description"] = description
        return self.keep_first_created(account_id, name, self.result("create_service_id", **body))

    def keep_first_created(self, account_id, name, created):
        """After creating ``created``: (record to use, this run's deleted ID or None)."""
        records = self.list_service_ids(account_id, name=name)
        if [r["id"] for r in records if r.get("name") == name] == [created["id"]]:
            # A second look a moment later catches a run whose create landed after our look.
            self._sleep(1)
            records = self.list_service_ids(account_id, name=name)
        kept = first_created(records, name) or created
        if kept["id"] == created["id"]:
            return created, None
        self.call("delete_service_id", id=created["id"])
        return self.result("get_service_id", id=kept["id"]), created["id"]

    def verify_api_key(self, value):
        """Log in with an API key the way a registry's token service does: exchange it for
        an IAM access token. The token's claims (iam_id, account), or IamError.

        A fresh authenticator, so the client's own (cached) token is not what is checked.
        """
        self.add_secret(value)
        manager = IAMAuthenticator(value, url=self.base_url).token_manager
        try:
            return token_claims(self._retrying("token", manager.request_token, {}).get("access_token"))
        except IamError as exc:
            # The hint about ibmcloud_api_key is for the caller's key, not this one.
            detail = str(exc).split("; check ibmcloud_api_key", maxsplit=1)[0]
            raise IamError("the new API key could not log in: %s" % detail, status=exc.status,
                           transaction_id=exc.transaction_id, operation="token")

    def key_details(self, value):
        """What IAM knows about an API key value, or None when it does not know it."""
        self.add_secret(value)
        try:
            return self.result("get_api_keys_details", iam_api_key=value)
        except IamError as exc:
            if exc.status in (400, 404):
                return None
            raise


def get_iam_client(module):
    """Build the IamClient for a module whose argument spec includes iam_argument_spec().

    Validation errors of the IAM options fail the module before any request.
    """
    require_ibm_sdk(module)
    errors = validate_iam_params(module.params)
    if errors:
        module.fail_json(msg="Invalid options: " + "; ".join(errors))
    # The SDK logs through the standard logging module; keep it off stdout and stderr.
    logging.getLogger("ibm-cloud-sdk-core").addHandler(logging.NullHandler())
    logging.getLogger("ibm-cloud-sdk-core").propagate = False
    return IamClient(module.params["ibmcloud_api_key"], iam_base_url(module.params),
                     retries=module.params["iam_retries"])


__all__ = ["iam_argument_spec", "IamClient", "IamError", "PlanError", "get_iam_client", "iam_base_url",
           "require_ibm_sdk", "token_claims", "validate_iam_params"]
