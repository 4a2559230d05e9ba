"""The router stand-in's admission decisions (tests/standins/router.py decide()), without a
cluster: the tie-break of host claims and extended validation, as openshift/router does them."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "standins"))

# pylint: disable=wrong-import-position
import router  # noqa: E402

DOMAIN = "apps.test.example.com"


def route(namespace, name, host=None, created="2026-12-04T10:00:00Z", uid="u", path=None, tls=None):
    spec = {"to": {"kind": "Service", "name": "image-registry"}}
    if host:
        spec["host"] = host
    if path:
        spec["path"] = path
    if tls:
        spec["tls"] = tls
    return {"metadata": {"namespace": namespace, "name": name, "creationTimestamp": created, "uid": uid},
            "spec": spec}


def verdicts(routes):
    """{namespace/name: (status, reason)} of the ingress each status write sets."""
    found = {}
    for meta, body, status in router.decide(routes, set(), DOMAIN):
        if status:
            (entry,) = body["status"]["ingress"]
            condition = entry["conditions"][0]
            found["%s/%s" % (meta["namespace"], meta["name"])] = (condition["status"], condition.get("reason"))
    return found


def test_a_route_without_host_gets_the_default_host_first():
    (write,) = router.decide([route("team", "registry")], set(), DOMAIN)
    assert write[1] == {"spec": {"host": "registry-team." + DOMAIN}} and write[2] is False


def test_same_creation_second_the_lower_uid_keeps_the_host():
    # Creation timestamps have a resolution of one second: the router then compares UIDs.
    routes = [route("b", "r", "x.example.com", uid="9f"), route("a", "r", "x.example.com", uid="1a")]
    assert verdicts(routes) == {"a/r": ("True", None), "b/r": ("False", "HostAlreadyClaimed")}
    # The order of the LIST does not matter.
    assert verdicts(list(reversed(routes))) == verdicts(routes)


def test_older_route_wins_over_a_lower_uid():
    routes = [route("a", "r", "x.example.com", created="2026-12-04T10:00:01Z", uid="00"),
              route("b", "r", "X.example.com", created="2026-12-04T10:00:00Z", uid="ff")]
    assert verdicts(routes) == {"b/r": ("True", None), "a/r": ("False", "HostAlreadyClaimed")}


def test_paths_share_a_host_within_a_namespace_only():
    routes = [route("a", "root", "x.example.com", uid="1"), route("a", "api", "x.example.com", uid="2", path="/api"),
              route("a", "again", "x.example.com", uid="3"), route("b", "api", "x.example.com", uid="4", path="/api")]
    assert verdicts(routes) == {"a/root": ("True", None), "a/api": ("True", None),
                                "a/again": ("False", "HostAlreadyClaimed"), "b/api": ("False", "HostAlreadyClaimed")}


def test_a_certificate_that_does_not_parse_fails_extended_validation():
    garbage = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
    bad = route("a", "r", "x.example.com", tls={"termination": "edge", "certificate": garbage})
    (write,) = router.decide([bad], set(), DOMAIN)
    (entry,) = write[1]["status"]["ingress"]
    assert entry["conditions"][0]["reason"] == "ExtendedValidationFailed"
    assert "spec.tls.certificate" in entry["conditions"][0]["message"]
    assert "failed to parse certificate" in entry["conditions"][0]["message"]


def test_a_rejected_certificate_does_not_claim_the_host():
    bad = route("a", "bad", "x.example.com", uid="1", tls={"termination": "edge", "key": "not a key"})
    good = route("b", "good", "x.example.com", uid="2")
    assert verdicts([bad, good]) == {"a/bad": ("False", "ExtendedValidationFailed"), "b/good": ("True", None)}


def test_nothing_is_written_when_the_status_is_already_right_and_ignored_namespaces_are_skipped():
    admitted = route("a", "r", "x.example.com")
    admitted["status"] = {"ingress": [dict(router.desired_ingress(admitted, None, DOMAIN))]}
    admitted["status"]["ingress"][0]["conditions"][0]["lastTransitionTime"] = "2026-12-04T10:00:00Z"
    assert router.decide([admitted], set(), DOMAIN) == []
    assert router.decide([route("quiet", "r", "y.example.com")], {"quiet"}, DOMAIN) == []
