"""LOCAL STAND-IN for what openshift-apiserver does to ImageStreams and BuildConfigs when
they are written, for tests only. This is NOT OpenShift.

On OpenShift 4, image.openshift.io and build.openshift.io are aggregated APIs served by
openshift-apiserver, not CRDs. Here they are CRDs (tests/cluster/crds/), and a CRD alone
cannot do what that server does on every write. This stand-in is a mutating admission
webhook of the local kube-apiserver, in front of those CRDs, that does it:

ImageStream (``spec.tags`` is a map keyed by name on the server):

* duplicate tag names collapse (the last one wins) and the tags come back sorted by name;
* ``referencePolicy.type`` defaults to ``Source``, ``importPolicy.importMode`` to
  ``Legacy``; ``annotations`` (``null``) and ``generation`` are always returned;
* ``generation``: the stream's ``metadata.generation`` goes up by one when the spec
  changes. A new tag, a tag whose source (``from``), ``reference`` or import mode
  changed, and a tag sent with ``generation: 0`` (the request for a new import) get the
  stream's new generation; any other tag keeps the generation it had, whatever the
  request says.

BuildConfig: ``spec.strategy.type`` is optional and derived from the one strategy given;
exactly one of ``dockerStrategy``, ``sourceStrategy``, ``customStrategy`` and
``jenkinsPipelineStrategy`` must be given (422 otherwise).

The HTTPS server runs on 127.0.0.1 with a self-signed certificate made with openssl for
this run; its MutatingWebhookConfiguration has a name of its own and is deleted by
:meth:`stop`. ``failurePolicy: Fail``: a write that the stand-in did not see would not
be what the server stores; a test process killed before ``stop`` leaves a webhook whose
address refuses connections, which only blocks ImageStream and BuildConfig writes.

Usage: ``with OpenShiftAPIServerStandIn(kubeconfig): ...``.
"""

from __future__ import annotations

import base64
import copy
import json

from serving import AdmissionWebhook

IMAGE_GROUP, BUILD_GROUP = "image.openshift.io", "build.openshift.io"
STRATEGIES = {"dockerStrategy": "Docker", "sourceStrategy": "Source", "customStrategy": "Custom",
              "jenkinsPipelineStrategy": "JenkinsPipeline"}


def _tag_source(tag: dict) -> tuple:
    """What makes the server import a tag again when it changes."""
    return (json.dumps(tag.get("from"), sort_keys=True), bool(tag.get("reference")),
            (tag.get("importPolicy") or {}).get("importMode"))


def image_stream_spec(spec: dict | None, old_spec: dict | None, old_generation: int | None) -> tuple:
    """(spec, generation) as openshift-apiserver stores an ImageStream written with ``spec``;
    ``old_spec``/``old_generation`` are the stored ones (None on create)."""
    spec = copy.deepcopy(spec or {})
    by_name = {}
    for tag in spec.get("tags") or []:
        by_name[tag.get("name")] = tag      # a map on the server: the last one wins
    tags = []
    for name in sorted(by_name, key=lambda n: n or ""):
        tag = by_name[name]
        tag.setdefault("annotations", None)
        tag["referencePolicy"] = dict(tag.get("referencePolicy") or {})
        tag["referencePolicy"]["type"] = tag["referencePolicy"].get("type") or "Source"
        tag["importPolicy"] = dict(tag.get("importPolicy") or {})
        tag["importPolicy"]["importMode"] = tag["importPolicy"].get("importMode") or "Legacy"
        tags.append(tag)
    if tags or "tags" in spec:
        spec["tags"] = tags
    if old_spec is None:
        generation = 1
        for tag in tags:
            if not tag.get("generation"):
                tag["generation"] = generation
        return spec, generation
    old_tags = {t.get("name"): t for t in old_spec.get("tags") or []}
    generation = (old_generation or 0) + 1
    for tag in tags:
        old = old_tags.get(tag.get("name"))
        if tag.get("generation") == 0 or old is None or _tag_source(old) != _tag_source(tag):
            tag["generation"] = generation
        else:
            tag["generation"] = old.get("generation")
    if spec == old_spec:
        return spec, old_generation
    return spec, generation


def build_config_problem(spec: dict | None) -> str | None:
    strategy = (spec or {}).get("strategy") or {}
    given = [field for field in STRATEGIES if strategy.get(field) is not None]
    if len(given) != 1:
        return ("spec.strategy: Invalid value: must provide a value for exactly one of sourceStrategy, "
                "customStrategy, dockerStrategy, or jenkinsPipelineStrategy")
    return None


def build_config_spec(spec: dict | None) -> dict:
    spec = copy.deepcopy(spec or {})
    strategy = spec.get("strategy") or {}
    given = [field for field in STRATEGIES if strategy.get(field) is not None]
    if not strategy.get("type") and len(given) == 1:
        strategy["type"] = STRATEGIES[given[0]]
    return spec


class OpenShiftAPIServerStandIn(AdmissionWebhook):
    """Mutating webhook for ImageStreams and BuildConfigs. LOCAL STAND-IN for openshift-apiserver."""

    KIND = "mutating"
    LABEL = "openshift-apiserver-standin"
    TITLE = "openshift-apiserver stand-in"

    def __init__(self, kubeconfig: str):
        super().__init__(kubeconfig)
        self.reviews: list = []     # (resource, operation, namespace, name, allowed)

    def review(self, request: dict) -> dict:
        """The AdmissionReview response for one request."""
        resource = (request.get("resource") or {}).get("resource")
        obj = request.get("object") or {}
        old = request.get("oldObject")
        response = {"uid": request.get("uid"), "allowed": True}
        name = request.get("name") or (obj.get("metadata") or {}).get("name") or ""
        patch = []
        if resource == "imagestreams":
            old_meta = (old or {}).get("metadata") or {}
            old_spec = (old or {}).get("spec") if old else None
            # metadata.generation is the API server's: it sets old + 1 after admission when the
            # spec changed, the generation given to the tags here.
            spec, _generation = image_stream_spec(obj.get("spec"), old_spec, old_meta.get("generation"))
            patch.append({"op": "add", "path": "/spec", "value": spec})
        elif resource == "buildconfigs":
            problem = build_config_problem(obj.get("spec"))
            if problem:
                response.update(allowed=False, status={
                    "code": 422, "reason": "Invalid",
                    "message": 'BuildConfig.build.openshift.io "%s" is invalid: %s' % (name, problem)})
            else:
                patch.append({"op": "add", "path": "/spec", "value": build_config_spec(obj.get("spec"))})
        if patch and response["allowed"]:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
        self.reviews.append((resource, request.get("operation"), request.get("namespace"), name,
                             response["allowed"]))
        return response

    # --- the webhook configuration ------------------------------------------------------

    def webhooks(self, url: str, ca_bundle: str) -> list:
        return [{
            "name": "%s.openshift-apiserver-standin.ibmreg.test" % resource,
            "clientConfig": {"url": url + "/mutate", "caBundle": ca_bundle},
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [group], "apiVersions": ["v1"],
                       "resources": [resource], "scope": "Namespaced"}],
            "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "reinvocationPolicy": "Never", "timeoutSeconds": 5}
            for group, resource in ((IMAGE_GROUP, "imagestreams"), (BUILD_GROUP, "buildconfigs"))]

    def probe(self) -> tuple:
        """A BuildConfig with two strategies: only the stand-in refuses it."""
        return BUILD_GROUP, "buildconfigs", {
            "apiVersion": BUILD_GROUP + "/v1", "kind": "BuildConfig", "metadata": {"name": "admission-probe"},
            "spec": {"strategy": {"dockerStrategy": {}, "sourceStrategy": {"from": {
                "kind": "DockerImage", "name": "probe"}}}}}, "exactly one of"
