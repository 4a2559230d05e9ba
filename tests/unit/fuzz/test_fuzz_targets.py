# -*- coding: utf-8 -*-
"""Fuzzing: namespace names and selectors (kube/targeting), IAM policy scopes (iam/plan),
OpenShift image references, targets and routes (openshift/), Retry-After (common/).

Properties: nothing but the collection's own errors, each check returns a message or
None (never raises), and round trips where they exist: a target written as
``namespace/stream:tag`` parses back to its parts, a policy body's scope is read back as
the scope it was built from.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import re

from hypothesis import given
from hypothesis import strategies as st

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=12)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=12)
NAMES = st.text("abz09-.", max_size=70) | st.text(max_size=20)
SELECTOR_TEXT = st.lists(st.sampled_from(["app", "=", "==", "!=", "!", " in ", " notin ", "(", ")", ",", "a,b",
                                          "x.io/k", " ", "-", "_", "9"]), max_size=10).map("".join)
ACCOUNT = "0123456789abcdef0123456789abcdef"


@given(name=NAMES | JSON_SCALARS)
def test_namespace_name_check_matches_the_kubernetes_rule(fuzz, name):
    problem = fuzz.find("kube", "namespace_name_error")(name)
    valid = isinstance(name, str) and 0 < len(name) <= 63 and bool(DNS_LABEL.match(name))
    assert (problem is None) == valid, (name, problem)
    other = fuzz.find("kube", "object_name_error")(name, "name")
    assert other is None or isinstance(other, str)


@given(namespaces=st.none() | st.lists(NAMES, max_size=3), selector=st.none() | st.lists(SELECTOR_TEXT | st.text(max_size=16),
                                                                                         max_size=3),
       all_namespaces=st.booleans(), required=st.booleans())
def test_target_options_give_messages_only(fuzz, namespaces, selector, all_namespaces, required):
    params = {"namespaces": namespaces, "namespace_selector": selector, "all_namespaces": all_namespaces,
              "exclude_namespaces": [], "include_system_namespaces": False}
    errors = fuzz.call(fuzz.find("kube", "validate_target_params"), params, required)
    assert errors is None or all(isinstance(e, str) for e in errors)
    fuzz.call(fuzz.find("kube", "describe_targets"), params)


@given(names=st.lists(NAMES, max_size=6), exclude=st.lists(st.text("ab*?[]!-", max_size=6) | st.text(max_size=6),
                                                           max_size=3), system=st.booleans())
def test_exclude_globs(fuzz, names, exclude, system):
    kept = fuzz.call(fuzz.find("kube", "filter_namespaces"), names,
                     {"exclude_namespaces": exclude, "include_system_namespaces": system})
    if kept is not None:
        assert set(kept) <= set(names)


@given(policy=st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["access", "authorization"]) | JSON_SCALARS,
    "resource": st.fixed_dictionaries({}, optional={"attributes": st.lists(st.fixed_dictionaries({
        "key": st.sampled_from(["accountId", "serviceName", "region", "resourceType", "resource", "x"]),
        "value": st.sampled_from([ACCOUNT, "container-registry", "us-south", "namespace", "ns1"]) | JSON_SCALARS,
    }, optional={"operator": st.sampled_from(["stringEquals", "stringMatch"])}), max_size=6), "tags": JSON_VALUES}),
    "subject": st.fixed_dictionaries({"attributes": st.lists(st.fixed_dictionaries(
        {"key": st.just("iam_id"), "value": st.sampled_from(["iam-ServiceId-1", "x"])}), max_size=2)}),
    "control": st.fixed_dictionaries({"grant": st.fixed_dictionaries({"roles": st.lists(st.fixed_dictionaries(
        {}, optional={"role_id": st.text(max_size=12) | st.just("crn:v1:bluemix:public:container-registry::::"
                                                                "serviceRole:Reader")}), max_size=3)})}),
    "rule": JSON_VALUES, "pattern": JSON_SCALARS}))
def test_policy_scope_reads_any_policy(fuzz, policy):
    scope = fuzz.call(fuzz.find("iam", "policy_scope"), policy, ACCOUNT)
    assert scope is None or len(scope) == 2
    fuzz.call(fuzz.find("iam", "policy_summary"), policy, ACCOUNT, "unchanged")
    fuzz.call(fuzz.find("iam", "is_registry_policy"), policy, "iam-ServiceId-1")


@given(region=st.none() | st.sampled_from(["us-south", "eu-de", "global"]),
       namespace=st.none() | st.text("abz09_-", min_size=4, max_size=30),
       roles=st.lists(st.sampled_from(["Reader", "Writer", "Manager"]), min_size=1, unique=True))
def test_policy_body_scope_round_trip(fuzz, region, namespace, roles):
    body = fuzz.find("iam", "policy_body")(ACCOUNT, "iam-ServiceId-1", roles, (region, namespace))
    assert fuzz.find("iam", "policy_scope")(body, ACCOUNT) == (region, namespace)
    assert fuzz.find("iam", "policy_roles")(body) == sorted(roles)


@given(roles=st.lists(st.text(max_size=10) | st.sampled_from(["reader", " Writer ", "MANAGER"]), max_size=4),
       regions=st.lists(st.text(max_size=10) | st.sampled_from(["us-south", "jp-tok"]), max_size=3),
       namespaces=st.lists(NAMES | JSON_SCALARS, max_size=3), account=st.none() | st.text("0123456789abcdef", max_size=34))
def test_iam_option_checks(fuzz, roles, regions, namespaces, account):
    fuzz.call(fuzz.find("iam", "normalise_roles"), roles)
    assert all(isinstance(e, str) for e in fuzz.find("iam", "region_errors")(regions))
    assert all(isinstance(e, str) for e in fuzz.find("iam", "registry_namespace_errors")(namespaces))
    problem = fuzz.find("iam", "account_id_error")(account)
    assert problem is None or isinstance(problem, str)


@given(namespace=st.text("abz09-", min_size=1, max_size=10).filter(DNS_LABEL.match),
       stream=st.text("abz09", min_size=1, max_size=10), tag=st.none() | st.text("abZ09_.-", min_size=1, max_size=12)
       .filter(lambda t: t[0] not in ".-"))
def test_target_round_trip(fuzz, namespace, stream, tag):
    parse = fuzz.find("openshift", "parse_target")
    text = "%s/%s%s" % (namespace, stream, ":" + tag if tag else "")
    assert parse(text, None) == (namespace, stream, tag or "latest")
    assert parse(text.split("/", 1)[1], namespace) == (namespace, stream, tag or "latest")


@given(target=st.text(max_size=40) | JSON_SCALARS, default=st.none() | NAMES)
def test_any_target(fuzz, target, default):
    parsed = fuzz.call(fuzz.find("openshift", "parse_target"), target, default)
    assert parsed is None or len(parsed) == 3


@given(source=st.text(max_size=60) | st.lists(st.sampled_from(["us.icr.io", "/", ":", "ns", "img", "1.0", "@",
                                                              "sha256:", "0" * 32, "-", ".", "__"]), max_size=12)
       .map("".join), host=NAMES | JSON_SCALARS, port=st.text("0123456789abc-", max_size=7) | st.integers())
def test_reference_host_and_port_checks(fuzz, source, host, port):
    for check, value in (("source_error", source), ("host_error", host), ("target_port_error", port)):
        problem = fuzz.call(fuzz.find("openshift", check), value)
        assert problem is None or isinstance(problem, str)


@given(route=st.fixed_dictionaries({}, optional={
    "spec": st.fixed_dictionaries({}, optional={"host": st.sampled_from(["r.apps.x", "R.APPS.X", ""]) | JSON_SCALARS}),
    "status": st.fixed_dictionaries({}, optional={"ingress": st.lists(st.fixed_dictionaries({}, optional={
        "host": st.sampled_from(["r.apps.x", "other"]) | JSON_SCALARS, "routerName": JSON_SCALARS,
        "conditions": st.lists(st.fixed_dictionaries({}, optional={
            "type": st.sampled_from(["Admitted", "Other"]), "status": st.sampled_from(["True", "False", "Unknown"]),
            "reason": JSON_SCALARS, "message": JSON_SCALARS}), max_size=3) | JSON_SCALARS}), max_size=3)
        | JSON_VALUES})}))
def test_route_admission_reads_any_status(fuzz, route):
    state = fuzz.call(fuzz.find("openshift", "route_admission"), route)
    assert state is None or state[0] in ("admitted", "rejected", "pending")
    fuzz.call(fuzz.find("openshift", "admitted_host"), route)


@given(secret_type=st.sampled_from(["kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson", None]),
       auths=st.dictionaries(st.sampled_from(["image-registry.openshift-image-registry.svc:5000", "172.30.1.1:5000",
                                              "default-route.apps.x"]) | st.text(max_size=8),
                             st.fixed_dictionaries({}, optional={
                                 "username": st.sampled_from(["serviceaccount", "<token>"]) | JSON_SCALARS,
                                 "password": st.text(max_size=10) | JSON_SCALARS,
                                 "auth": st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode("ascii"))
                                 | JSON_SCALARS}) | JSON_VALUES, max_size=3))
def test_internal_credentials_from_any_dockercfg_secret(fuzz, secret_type, auths):
    key = ".dockercfg" if secret_type == "kubernetes.io/dockercfg" else ".dockerconfigjson"
    document = auths if key == ".dockercfg" else {"auths": auths}
    secret = {"type": secret_type, "data": {key: base64.b64encode(json.dumps(document).encode()).decode("ascii")}}
    found = fuzz.call(fuzz.find("openshift", "internal_credentials"), secret, "Secret default/builder-dockercfg-x")
    assert found is None or found[2] in ("username-password", "auth-only")


# Objects from the API server: their shape is the API's schema (names are strings), only
# the values vary.
REF_NAMES = st.sampled_from(["default-dockercfg-a", "builder-dockercfg-b", "default-token-c", "y"]) | st.text(max_size=8)


@given(secrets=st.lists(st.fixed_dictionaries({}, optional={"metadata": st.fixed_dictionaries({}, optional={
    "name": REF_NAMES,
    "creationTimestamp": st.sampled_from(["2026-01-01T00:00:00Z", "2025-01-01T00:00:00Z"]),
    "annotations": st.dictionaries(st.sampled_from(["kubernetes.io/service-account.name", "a"]),
                                   st.sampled_from(["default", "builder"]) | st.text(max_size=4), max_size=2)})}),
                        max_size=4),
       account=st.fixed_dictionaries({}, optional={
           "imagePullSecrets": st.lists(st.fixed_dictionaries({}, optional={"name": REF_NAMES}), max_size=3),
           "secrets": st.lists(st.fixed_dictionaries({}, optional={"name": REF_NAMES, "namespace": REF_NAMES}),
                               max_size=3)}))
def test_dockercfg_secret_choice(fuzz, secrets, account):
    fuzz.call(fuzz.find("openshift", "pick_dockercfg_secret"), secrets, "default")
    fuzz.call(fuzz.find("openshift", "dockercfg_secret_name"), account, "default")


@given(value=st.none() | st.text(max_size=40) | st.sampled_from(["5", "-1", "1e400", "nan", "inf", "-inf", "0x10",
                                                                 "Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 99 Foo"]),
       attempt=st.integers(0, 40))
def test_retry_after_is_a_bounded_delay(fuzz, value, attempt):
    delay = fuzz.find("common", "retry_delay")({"Retry-After": value}, attempt, 0.2, 5.0, 30.0)
    assert isinstance(delay, float) and 0.0 <= delay <= 30.0, delay


@given(header=st.none() | st.text(max_size=60) | st.lists(st.sampled_from(
    ["Bearer ", "Basic ", 'realm="https://a/token"', ",", 'service="r"', 'scope="x"', "=", '"']), max_size=6)
    .map("".join))
def test_www_authenticate_challenge(fuzz, header):
    challenges = fuzz.call(fuzz.find("pull_secrets", "parse_challenges"), header)
    assert challenges is None or all(isinstance(c[1], dict) for c in challenges)
    scheme, params = fuzz.call(fuzz.find("pull_secrets", "parse_challenge"), header) or (None, {})
    assert scheme is None or isinstance(scheme, str)
    assert isinstance(params, dict)
