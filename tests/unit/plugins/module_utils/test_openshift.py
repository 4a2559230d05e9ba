# -*- coding: utf-8 -*-
"""Pure logic of module_utils/openshift/: flavour detection (client.py), plans, compares, redaction (plan.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json

import pytest

from ansible_collections.ibmcloud.registry.plugins.module_utils.openshift import client as ocp_client
from ansible_collections.ibmcloud.registry.plugins.module_utils.openshift import plan as ocp
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.dockerconfig import (
    DockerConfigError,
)

OCP4_GROUPS = {"apps", "route.openshift.io", "image.openshift.io", "build.openshift.io",
               "config.openshift.io", "imageregistry.operator.openshift.io"}
OCP3_GROUPS = {"apps", "route.openshift.io", "image.openshift.io", "build.openshift.io",
               "apps.openshift.io", "project.openshift.io"}
K8S_GROUPS = {"apps", "batch", "networking.k8s.io", "apiextensions.k8s.io"}


# --- detection ---------------------------------------------------------------------

@pytest.mark.parametrize("groups, flavour", [
    (OCP4_GROUPS, ocp_client.OPENSHIFT_4),
    ({"imageregistry.operator.openshift.io", "route.openshift.io"}, ocp_client.OPENSHIFT_4),
    (OCP3_GROUPS, ocp_client.OPENSHIFT_3),
    (K8S_GROUPS, ocp_client.KUBERNETES),
    (set(), ocp_client.KUBERNETES),
])
def test_flavour_from_groups(groups, flavour):
    assert ocp_client.flavour_from_groups(groups) == flavour


def test_missing_api_message_plain_kubernetes_says_not_openshift():
    message = ocp_client.missing_api_message("ocp_registry_route", K8S_GROUPS, ["route.openshift.io"])
    assert message.startswith("ocp_registry_route needs the OpenShift API group route.openshift.io")
    assert "plain Kubernetes, not OpenShift" in message


def test_missing_api_message_openshift3_has_no_operator():
    message = ocp_client.missing_api_message("ocp_registry_config", OCP3_GROUPS,
                                             ["imageregistry.operator.openshift.io"])
    assert "OpenShift 3.11, which has no image registry operator" in message


def test_missing_api_message_none_when_served():
    assert ocp_client.missing_api_message("t", OCP4_GROUPS, ["route.openshift.io", "image.openshift.io"]) is None
    assert ocp_client.missing_api_message("t", K8S_GROUPS, []) is None


def test_missing_api_message_partial_openshift():
    message = ocp_client.missing_api_message("t", {"route.openshift.io"}, ["build.openshift.io", "image.openshift.io"])
    assert "groups build.openshift.io, image.openshift.io" in message
    assert "OpenShift 3.11" in message and "does not serve them" in message


def test_registry_location_per_flavour():
    assert ocp_client.registry_location(ocp_client.OPENSHIFT_4) == {
        "namespace": "openshift-image-registry", "service": "image-registry",
        "target_port": "5000-tcp", "pvc": "image-registry-storage"}
    v3 = ocp_client.registry_location(ocp_client.OPENSHIFT_3)
    assert (v3["namespace"], v3["service"], v3["pvc"]) == ("default", "docker-registry", "registry-backing")
    assert ocp_client.registry_location(ocp_client.OPENSHIFT_4, "ns", "svc")["namespace"] == "ns"


# --- generic ---------------------------------------------------------------------------

def test_apply_merge_patch_rfc7386():
    doc = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert ocp.apply_merge_patch(doc, {"a": {"b": None, "c": [3]}, "e": {"f": 1}}) == \
        {"a": {"c": [3]}, "d": 1, "e": {"f": 1}}
    assert doc == {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert ocp.apply_merge_patch(None, {"x": None}) == {}


def test_dig():
    assert ocp.dig({"a": {"b": None}}, "a", "b", default="d") == "d"
    assert ocp.dig({"a": {"b": {}}}, "a", "b") == {}
    assert ocp.dig(None, "a") is None


# --- routes ------------------------------------------------------------------------------

BALANCE = {ocp.BALANCE_ANNOTATION: "source"}


def existing_route(**spec_changes):
    """A Route as `oc create route reencrypt --service=image-registry` leaves it, admitted."""
    spec = {"host": "image-registry-openshift-image-registry.apps.example.com",
            "to": {"kind": "Service", "name": "image-registry", "weight": 100},
            "port": {"targetPort": "5000-tcp"}, "tls": {"termination": "reencrypt"},
            "wildcardPolicy": "None"}
    spec.update(spec_changes)
    return {"metadata": {"name": "image-registry", "namespace": "openshift-image-registry",
                         "resourceVersion": "7", "annotations": dict(BALANCE)},
            "spec": spec,
            "status": {"ingress": [{"host": spec.get("host"), "routerName": "default",
                                    "conditions": [{"type": "Admitted", "status": "True"}]}]}}


def test_route_spec_like_oc_create_route():
    spec = ocp.route_spec("image-registry", "5000-tcp")
    assert spec == {"to": {"kind": "Service", "name": "image-registry", "weight": 100},
                    "port": {"targetPort": "5000-tcp"}, "tls": {"termination": "reencrypt"},
                    "wildcardPolicy": "None"}
    numeric = ocp.route_spec("s", "5000", host="r.example.com",
                             tls={"certificate": "C", "key": "K", "ca_certificate": None})
    assert numeric["port"]["targetPort"] == 5000 and numeric["host"] == "r.example.com"
    assert numeric["tls"] == {"termination": "reencrypt", "certificate": "C", "key": "K"}


def test_router_assigned_host_is_not_a_difference():
    spec = ocp.route_spec("image-registry", "5000-tcp")
    assert ocp.route_patch(existing_route(), spec, BALANCE) == {}
    assert ocp.plan_route(existing_route(), "image-registry", "x", spec, BALANCE) == ("unchanged", None)


def test_route_patch_only_what_differs():
    spec = ocp.route_spec("image-registry", "5000-tcp", host="registry.example.com",
                          tls={"certificate": "C", "key": "K"})
    route = existing_route(port={"targetPort": 5000})
    route["metadata"]["annotations"] = {"other": "kept"}
    patch = ocp.route_patch(route, spec, BALANCE)
    assert patch == {"spec": {"port": {"targetPort": "5000-tcp"}, "host": "registry.example.com",
                              "tls": {"certificate": "C", "key": "K"}},
                     "metadata": {"annotations": BALANCE}}
    after = ocp.apply_merge_patch(route, patch)
    assert ocp.route_patch(after, spec, BALANCE) == {}
    assert after["metadata"]["annotations"]["other"] == "kept"


def test_route_host_compare_is_case_insensitive_and_service_change_is_seen():
    spec = ocp.route_spec("docker-registry", "5000-tcp", host="IMAGE-registry-openshift-image-registry.apps.example.com")
    assert ocp.route_patch(existing_route(), spec, {}) == {
        "spec": {"to": {"kind": "Service", "name": "docker-registry", "weight": 100}}}


def test_route_patch_passthrough_clears_certificates():
    route = existing_route(tls={"termination": "reencrypt", "certificate": "C", "key": "K"})
    patch = ocp.route_patch(route, ocp.route_spec("image-registry", "5000-tcp", "passthrough"), BALANCE)
    assert patch == {"spec": {"tls": {"termination": "passthrough", "certificate": None, "key": None}}}


def test_plan_route_create_has_label_and_annotation():
    action, body = ocp.plan_route(None, "image-registry", "openshift-image-registry",
                                  ocp.route_spec("image-registry", "5000-tcp"), BALANCE)
    assert action == "create"
    assert body["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "ibmcloud.registry"}
    assert body["metadata"]["annotations"] == BALANCE
    assert body["apiVersion"] == "route.openshift.io/v1" and body["kind"] == "Route"


def test_route_view_redacts_key_and_fingerprints_certificates():
    before = existing_route(tls={"termination": "reencrypt", "certificate": "CERT", "key": "SECRET-KEY-1"})
    after = existing_route(tls={"termination": "reencrypt", "certificate": "CERT", "key": "SECRET-KEY-2"})
    view = ocp.route_view(after, BALANCE, compare_to=before)
    assert view["tls"]["key"] == "******** (changed)"
    assert view["tls"]["certificate"] == ocp.pem_fingerprint("CERT")
    assert "SECRET-KEY" not in json.dumps(view)
    assert ocp.route_view(after, BALANCE, compare_to=after)["tls"]["key"] == "********"
    assert view["annotations"] == BALANCE
    assert ocp.route_view(None) is None


def test_route_admission_states():
    route = existing_route()
    assert ocp.route_admission(route)[0] == "admitted"
    assert ocp.admitted_host(route) == route["spec"]["host"]
    # An old admission for another host does not count for the new host.
    moved = existing_route(host="new.example.com")
    moved["status"]["ingress"][0]["host"] = "old.example.com"
    assert ocp.route_admission(moved)[0] == "pending"
    assert ocp.admitted_host(moved) is None
    # No host yet (the router assigns it later): pending, never admitted.
    assert ocp.route_admission({"spec": {}, "status": {}})[0] == "pending"
    rejected = existing_route()
    rejected["status"]["ingress"][0]["conditions"] = [
        {"type": "Admitted", "status": "False", "reason": "HostAlreadyClaimed", "message": "older route"}]
    state, _host, detail = ocp.route_admission(rejected)
    assert state == "rejected"
    assert detail == {"host": route["spec"]["host"], "router": "default",
                      "reason": "HostAlreadyClaimed", "message": "older route"}


class FakeAPI:
    def __init__(self, routes):
        self.routes = list(routes)
        self.gets = 0

    def get(self, api_version, kind, name, namespace=None):
        self.gets += 1
        return self.routes.pop(0) if len(self.routes) > 1 else self.routes[0]


def test_wait_for_admission_polls_until_admitted():
    pending = existing_route()
    pending["status"] = {}
    api = FakeAPI([pending, existing_route()])
    clock = iter(range(100))
    host, router, route = ocp_client.wait_for_admission(api, "image-registry", "ns", 30, sleep=lambda s: None,
                                                        clock=lambda: next(clock))
    assert host.startswith("image-registry-") and router == "default" and route["status"]["ingress"]
    assert api.gets == 2


def test_wait_for_admission_is_bounded_and_says_why():
    pending = existing_route()
    pending["status"] = {}
    ticks = iter([0, 1, 2, 3, 11, 12])
    with pytest.raises(ocp.OpenShiftError, match="not admitted by a router within 10s"):
        ocp_client.wait_for_admission(FakeAPI([pending]), "r", "ns", 10, sleep=lambda s: None,
                                      clock=lambda: next(ticks))


def test_wait_for_admission_reports_rejection():
    rejected = existing_route()
    rejected["status"]["ingress"][0]["conditions"] = [
        {"type": "Admitted", "status": "False", "reason": "HostAlreadyClaimed", "message": "m"}]
    with pytest.raises(ocp.OpenShiftError, match="rejected Route ns/r .*HostAlreadyClaimed"):
        ocp_client.wait_for_admission(FakeAPI([rejected]), "r", "ns", 10, first=rejected)


@pytest.mark.parametrize("host, ok", [
    ("registry.example.com", True), ("a", True), ("Registry.example.com", False),
    ("https://registry.example.com", False), ("registry.example.com:443", False), ("", False)])
def test_host_error(host, ok):
    assert (ocp.host_error(host) is None) == ok


@pytest.mark.parametrize("port, ok", [("5000-tcp", True), ("5000", True), ("0", False),
                                      ("70000", False), ("Bad_Name", False)])
def test_target_port_error(port, ok):
    assert (ocp.target_port_error(port) is None) == ok


def test_service_port_error():
    service = {"spec": {"ports": [{"name": "5000-tcp", "port": 5000, "targetPort": 5000}]}}
    assert ocp.service_port_error(service, "5000-tcp", "ns", "svc") is None
    assert ocp.service_port_error(service, "5000", "ns", "svc") is None
    assert "matches no port of Service ns/svc (its ports: 5000-tcp (5000))" in \
        ocp.service_port_error(service, "https", "ns", "svc")


# --- registry config -----------------------------------------------------------------

def config(**spec):
    return {"metadata": {"name": "cluster", "resourceVersion": "3"}, "spec": spec}


def test_emptydir_replaces_other_backends_and_keeps_storage_management_state():
    current = config(managementState="Managed",
                     storage={"ibmcos": {"bucket": "b"}, "managementState": "Managed"})
    patch = ocp.registry_config_patch(current, storage="emptyDir")
    assert patch == {"spec": {"storage": {"ibmcos": None, "emptyDir": {}}}}
    after = ocp.apply_merge_patch(current, patch)
    assert after["spec"]["storage"] == {"emptyDir": {}, "managementState": "Managed"}
    assert ocp.registry_config_patch(after, storage="emptyDir") == {}
    assert ocp.storage_summary(after) == {"type": "emptyDir", "persistent": False}


def test_pvc_storage_with_and_without_claim():
    on_pvc = config(storage={"pvc": {"claim": "image-registry-storage"}})
    assert ocp.registry_config_patch(on_pvc, storage="pvc") == {}
    assert ocp.registry_config_patch(on_pvc, storage="pvc", pvc_claim="image-registry-storage") == {}
    assert ocp.registry_config_patch(on_pvc, storage="pvc", pvc_claim="bigger") == \
        {"spec": {"storage": {"pvc": {"claim": "bigger"}}}}
    on_empty = config(storage={"emptyDir": {}})
    assert ocp.registry_config_patch(on_empty, storage="pvc") == \
        {"spec": {"storage": {"emptyDir": None, "pvc": {}}}}
    assert ocp.storage_summary(on_pvc) == {"type": "pvc", "persistent": True}


def test_management_state_and_default_route():
    current = config(managementState="Unmanaged", storage={"emptyDir": {}})
    assert ocp.registry_config_patch(current, management_state="Managed", default_route=False) == \
        {"spec": {"managementState": "Managed"}}
    assert ocp.registry_config_patch(current, default_route=True) == {"spec": {"defaultRoute": True}}
    assert ocp.registry_config_patch(current) == {}
    view = ocp.registry_config_view(current)
    assert view == {"management_state": "Unmanaged", "storage": "emptyDir", "default_route": False}


def test_pvc_name_and_volume_details():
    assert ocp_client.pvc_claim_name(config(storage={"pvc": {"claim": "mine"}}), ocp_client.OPENSHIFT_4) == "mine"
    assert ocp_client.pvc_claim_name(config(storage={"pvc": {}}), ocp_client.OPENSHIFT_4) == "image-registry-storage"
    assert ocp_client.pvc_claim_name(None, ocp_client.OPENSHIFT_3) == "registry-backing"
    pending = {"metadata": {"name": "image-registry-storage", "namespace": "openshift-image-registry"},
               "spec": {"storageClassName": "ibmc-file-gold", "accessModes": ["ReadWriteMany"],
                        "resources": {"requests": {"storage": "100Gi"}}},
               "status": {"phase": "Pending"}}
    details = ocp.volume_details(pending)
    assert (details["size"], details["storage_class"], details["phase"], details["capacity"]) == \
        ("100Gi", "ibmc-file-gold", "Pending", None)
    bound = ocp.apply_merge_patch(pending, {"status": {"phase": "Bound", "capacity": {"storage": "200Gi"}},
                                            "spec": {"volumeName": "pv-1"}})
    assert ocp.volume_details(bound)["size"] == "200Gi"
    legacy = {"metadata": {"name": "registry-backing", "annotations": {
        "volume.beta.kubernetes.io/storage-class": "ibmc-file-bronze"}}, "spec": {}}
    assert ocp.volume_details(legacy)["storage_class"] == "ibmc-file-bronze"
    assert ocp.volume_details(None) is None


# --- internal registry credentials ---------------------------------------------------

def b64(text):
    return base64.b64encode(text.encode()).decode()


def dockercfg_secret(document):
    return {"metadata": {"name": "default-dockercfg-abcde"}, "type": "kubernetes.io/dockercfg",
            "data": {".dockercfg": b64(json.dumps(document))}}


def test_credentials_before_4_16():
    entry = {"username": "serviceaccount", "password": "tok-1", "email": "e", "auth": b64("serviceaccount:tok-1")}
    secret = dockercfg_secret({"172.21.0.1:5000": entry,
                               "image-registry.openshift-image-registry.svc:5000": entry})
    assert ocp.internal_credentials(secret, "Secret default/x") == ("serviceaccount", "tok-1", "username-password")


def test_credentials_from_4_16_auth_only():
    secret = dockercfg_secret({"image-registry.openshift-image-registry.svc:5000": {"auth": b64("<token>:bound.jwt")},
                               "image-registry.openshift-image-registry.svc.cluster.local:5000": {"auth": b64("x:y")}})
    assert ocp.internal_credentials(secret, "Secret default/x") == ("<token>", "bound.jwt", "auth-only")


def test_credentials_errors_never_show_values():
    with pytest.raises(ocp.OpenShiftError, match="holds no registry entry"):
        ocp.internal_credentials(dockercfg_secret({}), "Secret d/x")
    with pytest.raises(DockerConfigError) as info:
        ocp.internal_credentials(dockercfg_secret({"h": {"auth": "!!not-base64-SECRETVALUE"}}), "Secret d/x")
    assert "SECRETVALUE" not in str(info.value)


def test_dockercfg_secret_lookup():
    account = {"imagePullSecrets": [{"name": "all-icr-io"}, {"name": "default-dockercfg-x1"}],
               "secrets": [{"name": "default-token-y"}]}
    assert ocp.dockercfg_secret_name(account, "default") == "default-dockercfg-x1"
    assert ocp.dockercfg_secret_name({"secrets": [{"name": "builder-dockercfg-z"}]}, "builder") == "builder-dockercfg-z"
    assert ocp.dockercfg_secret_name({"imagePullSecrets": [{"name": "builder-dockercfg-z"}]}, "default") is None
    listed = [{"metadata": {"name": "a-dockercfg-1", "creationTimestamp": "2024-01-01T00:00:00Z",
                            "annotations": {"kubernetes.io/service-account.name": "default"}}},
              {"metadata": {"name": "default-dockercfg-2", "creationTimestamp": "2025-01-01T00:00:00Z"}},
              {"metadata": {"name": "builder-dockercfg-3", "creationTimestamp": "2026-01-01T00:00:00Z"}}]
    assert ocp.pick_dockercfg_secret(listed, "default")["metadata"]["name"] == "default-dockercfg-2"
    assert ocp.pick_dockercfg_secret(listed, "deployer") is None


def test_registry_server():
    assert ocp.registry_server("r.example.com") == "r.example.com"
    assert ocp.registry_server("r.example.com", 5000) == "r.example.com:5000"


# --- image stream tags -----------------------------------------------------------------

def test_desired_tag_matches_oc_tag():
    assert ocp.desired_tag("1.0", "us.icr.io/ns/app:1.0") == {
        "name": "1.0", "from": {"kind": "DockerImage", "name": "us.icr.io/ns/app:1.0"},
        "importPolicy": {"scheduled": True}, "referencePolicy": {"type": "Local"}}
    tag = ocp.desired_tag("t", "s", "Source", False, True, "PreserveOriginal")
    assert tag["importPolicy"] == {"scheduled": False, "insecure": True, "importMode": "PreserveOriginal"}


def test_tag_compare_uses_server_defaults():
    wanted = ocp.desired_tag("1.0", "us.icr.io/ns/app:1.0")
    as_server_holds = dict(wanted, generation=3, annotations=None,
                           importPolicy={"scheduled": True, "importMode": "Legacy"})
    assert not ocp.tag_differs(as_server_holds, wanted)
    assert ocp.tag_differs(dict(wanted, referencePolicy={}), wanted)  # default Source
    assert ocp.tag_differs(dict(wanted, importPolicy={}), wanted)  # not scheduled
    assert ocp.tag_differs(dict(wanted, **{"from": {"kind": "ImageStreamTag", "name": "us.icr.io/ns/app:1.0"}}), wanted)
    legacy = ocp.desired_tag("1.0", "us.icr.io/ns/app:1.0", import_mode="Legacy")
    assert not ocp.tag_differs(dict(wanted, importPolicy={"scheduled": True}), legacy)
    preserve = ocp.desired_tag("1.0", "us.icr.io/ns/app:1.0", import_mode="PreserveOriginal")
    assert ocp.tag_differs(as_server_holds, preserve)


def test_plan_stream_tags_keeps_foreign_tags_in_order():
    stream = {"spec": {"tags": [
        {"name": "old", "from": {"kind": "DockerImage", "name": "x/y:old"}, "generation": 1},
        {"name": "1.0", "from": {"kind": "DockerImage", "name": "us.icr.io/ns/app:0.9"}, "generation": 2,
         "annotations": {"keep": "me"}, "importPolicy": {"importMode": "Legacy"},
         "referencePolicy": {"type": "Source"}},
        {"name": "same", "from": {"kind": "DockerImage", "name": "us.icr.io/ns/app:same"}, "generation": 2,
         "importPolicy": {"scheduled": True}, "referencePolicy": {"type": "Local"}},
    ]}}
    wanted = [ocp.desired_tag("1.0", "us.icr.io/ns/app:1.0"), ocp.desired_tag("same", "us.icr.io/ns/app:same"),
              ocp.desired_tag("new", "us.icr.io/ns/app:new")]
    actions, tags = ocp.plan_stream_tags(stream, wanted)
    assert actions == {"1.0": "updated", "same": "unchanged", "new": "created"}
    assert [t["name"] for t in tags] == ["old", "1.0", "same", "new"]
    assert tags[0] == stream["spec"]["tags"][0]
    assert tags[1] == {"name": "1.0", "from": {"kind": "DockerImage", "name": "us.icr.io/ns/app:1.0"},
                       "annotations": {"keep": "me"},
                       "importPolicy": {"importMode": "Legacy", "scheduled": True},
                       "referencePolicy": {"type": "Local"}}
    assert tags[2]["generation"] == 2
    again = {"spec": {"tags": tags}}
    assert ocp.plan_stream_tags(again, wanted) == ({"1.0": "unchanged", "same": "unchanged", "new": "unchanged"}, None)


def test_plan_stream_tags_new_stream():
    actions, tags = ocp.plan_stream_tags(None, [ocp.desired_tag("v1", "icr.io/a/b:v1")])
    assert actions == {"v1": "created"} and len(tags) == 1
    body = ocp.image_stream_body("default", "b", tags)
    assert body["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "ibmcloud.registry"}


@pytest.mark.parametrize("target, parsed", [
    ("app:1.0", ("default", "app", "1.0")),
    ("app", ("default", "app", "latest")),
    ("team-a/app:v1", ("team-a", "app", "v1")),
])
def test_parse_target(target, parsed):
    assert ocp.parse_target(target, "default") == parsed


@pytest.mark.parametrize("target, message", [
    ("", "must be a non-empty string"),
    ("app:1.0", "names no project"),
    ("Team/app:1", "not a valid project name"),
    ("ns/App:1", "not a valid image stream name"),
    ("ns/app:-x", "not a valid tag"),
])
def test_parse_target_errors(target, message):
    with pytest.raises(ocp.OpenShiftError, match=message):
        ocp.parse_target(target, None)


@pytest.mark.parametrize("source, ok", [
    ("us.icr.io/ns/app:1.0", True), ("icr.io/ibm/liberty", True), ("localhost:5000/a/b:c", True),
    ("us.icr.io/ns/app@sha256:" + "a" * 64, True), ("us.icr.io/NS/app", False), ("", False),
    ("us.icr.io/ns/app:bad tag", False)])
def test_source_error(source, ok):
    assert (ocp.source_error(source) is None) == ok


def test_tag_view():
    assert ocp.tag_view(ocp.desired_tag("1", "icr.io/a/b:1")) == {
        "from": "DockerImage icr.io/a/b:1", "reference_policy": "Local", "scheduled": True}
    assert ocp.tag_view(None) is None


# --- build configs ---------------------------------------------------------------------

def build_config(strategy="Docker", push=None, pull=None):
    field = ocp.STRATEGY_FIELDS.get(strategy, "jenkinsPipelineStrategy")
    bc = {"metadata": {"name": "app", "resourceVersion": "5"},
          "spec": {"strategy": {"type": strategy, field: {}}, "output": {"to": {"kind": "DockerImage", "name": "x"}}}}
    if push:
        bc["spec"]["output"]["pushSecret"] = {"name": push}
    if pull:
        bc["spec"]["strategy"][field]["pullSecret"] = {"name": pull}
    return bc


def test_build_config_patch_sets_push_and_pull():
    patch = ocp.build_config_patch(build_config("Source"), "icr-writer", "icr-reader")
    assert patch == {"spec": {"output": {"pushSecret": {"name": "icr-writer"}},
                              "strategy": {"sourceStrategy": {"pullSecret": {"name": "icr-reader"}}}}}
    done = ocp.apply_merge_patch(build_config("Source"), patch)
    assert ocp.build_config_patch(done, "icr-writer", "icr-reader") == {}
    assert ocp.build_secrets_view(done) == {"push_secret": "icr-writer", "pull_secret": "icr-reader"}
    assert done["spec"]["output"]["to"] == {"kind": "DockerImage", "name": "x"}


def test_build_config_patch_only_push():
    assert ocp.build_config_patch(build_config(pull="other"), "w", None) == \
        {"spec": {"output": {"pushSecret": {"name": "w"}}}}


def test_build_config_patch_absent_clears_only_named_secret():
    bc = build_config(push="w", pull="other")
    assert ocp.build_config_patch(bc, "w", "r", state="absent") == {"spec": {"output": {"pushSecret": None}}}
    assert ocp.build_config_patch(build_config(), "w", "r", state="absent") == {}


def test_build_config_strategy_detection_and_jenkins():
    untyped = build_config()
    del untyped["spec"]["strategy"]["type"]
    assert ocp.strategy_field(untyped) == "dockerStrategy"
    with pytest.raises(ocp.OpenShiftError, match="JenkinsPipeline strategy, which has no pull secret"):
        ocp.build_config_patch(build_config("JenkinsPipeline"), None, "r")
    assert ocp.build_config_patch(build_config("JenkinsPipeline"), "w", None) == \
        {"spec": {"output": {"pushSecret": {"name": "w"}}}}


# --- system:image-puller RoleBindings -----------------------------------------------------

def _binding(consumer="b", subjects=None, role="system:image-puller", managed=True, rv="7"):
    body = ocp.image_puller_binding("a", consumer)
    if subjects is not None:
        body["subjects"] = subjects
    body["roleRef"]["name"] = role
    if not managed:
        body["metadata"]["labels"] = {}
    body["metadata"]["resourceVersion"] = rv
    return body


def test_image_puller_binding_grants_the_consumer_group_or_named_accounts():
    body = ocp.image_puller_binding("images", "team-a")
    assert body["metadata"]["name"] == "ibmcloud-registry-image-puller-team-a"
    assert body["metadata"]["namespace"] == "images"
    assert body["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "ibmcloud.registry"}
    assert body["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                               "name": "system:image-puller"}
    assert body["subjects"] == [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io",
                                 "name": "system:serviceaccounts:team-a"}]
    named = ocp.image_puller_subjects("team-a", ["deployer", "default", "default"])
    assert named == [{"kind": "ServiceAccount", "name": "default", "namespace": "team-a"},
                     {"kind": "ServiceAccount", "name": "deployer", "namespace": "team-a"}]


def test_plan_image_puller_actions():
    assert ocp.plan_image_puller("a", "b", None)["action"] == "created"
    assert ocp.plan_image_puller("a", "b", None)["write"] == "create"
    same = ocp.plan_image_puller("a", "b", _binding())
    assert (same["action"], same["write"]) == ("unchanged", None)
    # The server adds apiGroup "" to ServiceAccount subjects: no difference.
    served = _binding(subjects=[{"kind": "ServiceAccount", "apiGroup": "", "name": "default", "namespace": "b"}])
    assert ocp.plan_image_puller("a", "b", served, ["default"])["action"] == "unchanged"
    narrower = ocp.plan_image_puller("a", "b", _binding(), ["default"])
    assert (narrower["action"], narrower["write"]) == ("updated", "replace")
    assert narrower["body"]["metadata"]["resourceVersion"] == "7"
    assert narrower["after"]["subjects"] == ["ServiceAccount b/default"]
    assert narrower["before"]["subjects"] == ["Group system:serviceaccounts:b"]
    # roleRef cannot change: delete and create, only for our own binding or with force.
    other_role = ocp.plan_image_puller("a", "b", _binding(role="edit"))
    assert (other_role["action"], other_role["write"]) == ("updated", "recreate")
    theirs = ocp.plan_image_puller("a", "b", _binding(role="edit", managed=False))
    assert theirs["action"] == "failed" and "set force to replace it" in theirs["error"]
    assert ocp.plan_image_puller("a", "b", _binding(role="edit", managed=False), force=True)["write"] == "recreate"
    # Same grant, made by hand: adopted (labelled), not duplicated.
    adopted = ocp.plan_image_puller("a", "b", _binding(managed=False))
    assert (adopted["action"], adopted["write"]) == ("updated", "replace")
    assert adopted["body"]["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "ibmcloud.registry"


def test_plan_image_puller_absent():
    assert ocp.plan_image_puller("a", "b", None, state="absent")["action"] == "absent"
    gone = ocp.plan_image_puller("a", "b", _binding(), state="absent")
    assert (gone["action"], gone["write"], gone["after"]) == ("deleted", "delete", None)
    kept = ocp.plan_image_puller("a", "b", _binding(managed=False), state="absent")
    assert kept["action"] == "failed" and "set force to delete it" in kept["error"]
    assert ocp.plan_image_puller("a", "b", _binding(managed=False), state="absent", force=True)["action"] == "deleted"


def test_plan_image_pullers_every_pair_but_a_project_itself():
    existing = {"img": {"ibmcloud-registry-image-puller-b": _binding()}}
    steps = ocp.plan_image_pullers(existing, ["img", "base"], ["b", "img", "c"])
    assert [(s["namespace"], s["consumer"], s["action"]) for s in steps] == [
        ("img", "b", "unchanged"), ("img", "c", "created"),
        ("base", "b", "created"), ("base", "img", "created"), ("base", "c", "created")]


def _jwt(claims):
    def part(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return "%s.%s.signature" % (part({"alg": "RS256"}), part(claims))


def test_token_kind_from_annotations_or_the_token():
    bound = {"metadata": {"annotations": {"openshift.io/internal-registry-auth-token.binding": "bound"}}}
    legacy = {"metadata": {"annotations": {"openshift.io/internal-registry-auth-token.binding": "legacy"}}}
    assert ocp.token_kind(bound, "anything") == "bound"
    assert ocp.token_kind(legacy, _jwt({"exp": 1})) == "legacy"
    assert ocp.token_kind({}, _jwt({"exp": 1893456000, "sub": "system:serviceaccount:a:default"})) == "bound"
    assert ocp.token_kind({}, _jwt({"sub": "system:serviceaccount:a:default"})) == "legacy"
    old = {"metadata": {"annotations": {"openshift.io/token-secret.name": "default-token-abcde"}}}
    assert ocp.token_kind(old, "opaque-token") == "legacy"
    assert ocp.token_kind({}, "opaque-token") == "unknown"
    assert ocp.token_kind({}, "a.b.c") == "unknown"


def test_host_rules_of_openshift():
    assert ocp.host_error("registry.apps.example.com") is None
    assert "must not end with a dot" in ocp.host_error("registry.example.com.")
    assert "label longer than 63" in ocp.host_error("a" * 64 + ".example.com")
    assert ocp.host_error("a" * 63 + ".example.com") is None
    assert "not a valid host name" in ocp.host_error("x" * 250 + ".example.com")
    assert "not a valid host name" in ocp.host_error("Registry.example.com")


def test_custom_host_hint_names_the_missing_permission():
    text = ocp.custom_host_hint('spec.host: Forbidden: you do not have permission to set the host field of the route')
    assert 'cannot create resource "routes/custom-host" in API group "route.openshift.io"' in text
    text = ocp.custom_host_hint('Forbidden: you do not have permission to update the host field of the route')
    assert 'cannot update resource "routes/custom-host"' in text
    assert ocp.custom_host_hint("other") == "other"


def test_removed_warns_only_when_managed_storage_goes():
    managed = {"spec": {"managementState": "Managed", "storage": {"managementState": "Managed", "pvc": {"claim": "c"}}}}
    unmanaged = {"spec": {"managementState": "Managed", "storage": {"managementState": "Unmanaged", "pvc": {"claim": "c"}}}}
    assert ocp.removes_managed_storage(managed, "Removed") is True
    assert ocp.removes_managed_storage(managed, "Unmanaged") is False
    assert ocp.removes_managed_storage(unmanaged, "Removed") is False
    already = {"spec": {"managementState": "Removed", "storage": {"managementState": "Managed"}}}
    assert ocp.removes_managed_storage(already, "Removed") is False
    assert "Force" not in ocp.MANAGEMENT_STATES


def test_reimport_sends_generation_zero_and_is_always_an_update():
    wanted = ocp.desired_tag("1", "us.icr.io/a/b:1")
    stream = {"spec": {"tags": [dict(wanted, generation=4)]}}
    assert ocp.plan_stream_tags(stream, [wanted]) == ({"1": "unchanged"}, None)
    actions, tags = ocp.plan_stream_tags(stream, [wanted], reimport={"1"})
    assert actions == {"1": "updated"} and tags[0]["generation"] == 0
    changed = ocp.desired_tag("1", "us.icr.io/a/b:2")
    actions, tags = ocp.plan_stream_tags(stream, [changed])
    assert actions == {"1": "updated"} and "generation" not in tags[0]
    actions, tags = ocp.plan_stream_tags(None, [wanted], reimport={"1"})
    assert actions == {"1": "created"} and "generation" not in tags[0]


def test_tag_import_from_status_tags():
    spec = {"tags": [{"name": "1", "generation": 3}]}
    item = {"dockerImageReference": "r@sha256:aa", "image": "sha256:aa", "generation": 3}
    imported = {"spec": spec, "status": {"tags": [{"tag": "1", "items": [item]}]}}
    assert ocp.tag_import(imported, "1") == {"state": "imported", "image": "sha256:aa",
                                             "reference": "r@sha256:aa", "generation": 3}
    old = {"spec": spec, "status": {"tags": [{"tag": "1", "items": [dict(item, generation=2)]}]}}
    assert ocp.tag_import(old, "1") == {"state": "pending"}
    condition = {"type": "ImportSuccess", "status": "False", "reason": "NotFound", "message": "not found",
                 "generation": 3}
    failed = {"spec": spec, "status": {"tags": [{"tag": "1", "items": [dict(item, generation=2)],
                                                 "conditions": [condition]}]}}
    assert ocp.tag_import(failed, "1")["state"] == "failed"
    assert ocp.tag_import(failed, "1")["reason"] == "NotFound"
    # Written by this run, no generation assigned yet: not imported yet.
    assert ocp.tag_import({"spec": {"tags": [{"name": "1"}]}, "status": imported["status"]}, "1",
                          written=True) == {"state": "pending"}
    assert ocp.tag_import(None, "1") == {"state": "pending"}
