"""LOCAL STAND-IN for openshift-apiserver's image importer, for tests only. NOT OpenShift.

ImageStreams here are a CRD (tests/cluster/crds/image.openshift.io.yaml); nothing imports
their spec tags. This stand-in does, for the namespaces it is given, what OpenShift does
with a ``DockerImage`` spec tag:

* a tag without a generation, or with ``generation: 0`` (the request for a new import),
  gets the next generation, as the API server assigns it when the tag is written;
* a tag whose generation has no import result yet is imported: the manifest is asked for
  with a registry API v2 request, and the result is written to ``status.tags``, the newest
  entry first in ``items`` (``dockerImageReference`` with the digest, ``image``,
  ``generation``, ``created``), or as a condition ``ImportSuccess=False`` with a reason and
  message, as the importer reports them (``NotFound``, ``Unauthorized``, ``InternalError``).

Only registries on 127.0.0.0/8 (or ``localhost``) are asked, over HTTP when the tag's
``importPolicy.insecure`` is true and HTTPS otherwise. Any other registry (``us.icr.io``
and the like) is never resolved or dialled: its import fails as it does on a cluster that
cannot reach it ("no such host"). Requests are made with the kubeconfig it is given (the
``fixture`` user), so they never count as the client's.

Usage: ``with ImageImporterStandIn(kubeconfig, namespaces): ...``.
"""

from __future__ import annotations

import datetime
import http.client
import re
import ssl

from kubernetes import client, config

from serving import PollingController, merge_patch_custom_object

GROUP, VERSION, PLURAL = "image.openshift.io", "v1", "imagestreams"
MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json"])
_REFERENCE = re.compile(r"^(?P<host>[^/]+)/(?P<path>[^:@]+)(:(?P<tag>[^@]+))?(@(?P<digest>.+))?$")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _local(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name == "localhost" or name.startswith("127.")


def repository_of(source: str) -> str:
    """``host/path`` of a reference, without its tag or digest."""
    repository = source.split("@")[0]
    head, _sep, last = repository.rpartition("/")
    return "%s/%s" % (head, last.split(":")[0]) if head else repository


def resolve(source: str, insecure: bool) -> tuple:
    """(digest, None) or (None, (reason, message)) for one source image reference."""
    match = _REFERENCE.match(source)
    if not match or "." not in match.group("host") and ":" not in match.group("host") \
            and match.group("host") != "localhost":
        return None, ("InternalError", 'Internal error occurred: %s: no registry host in the reference' % source)
    host, path = match.group("host"), match.group("path")
    ref = match.group("digest") or match.group("tag") or "latest"
    if not _local(host):
        name = host.rsplit(":", 1)[0]
        return None, ("InternalError", 'Internal error occurred: Get "https://%s/v2/": dial tcp: lookup %s: '
                      "no such host" % (host, name))
    if insecure:
        connection = http.client.HTTPConnection(host, timeout=10)
    else:
        connection = http.client.HTTPSConnection(host, timeout=10, context=ssl.create_default_context())
    try:
        connection.request("HEAD", "/v2/%s/manifests/%s" % (path, ref), headers={"Accept": MANIFEST_TYPES})
        response = connection.getresponse()
        response.read()
    except ssl.SSLError as exc:
        return None, ("InternalError", 'Internal error occurred: Get "https://%s/v2/": %s' % (host, exc.reason))
    except (OSError, http.client.HTTPException) as exc:
        return None, ("InternalError", 'Internal error occurred: Get "https://%s/v2/": %s' % (host, exc))
    finally:
        connection.close()
    if response.status == 200 and response.getheader("Docker-Content-Digest"):
        return response.getheader("Docker-Content-Digest"), None
    if response.status in (401, 403):
        return None, ("Unauthorized", "you may not have access to the container image \"%s\"" % source)
    if response.status == 404:
        return None, ("NotFound", 'dockerimage.image.openshift.io "%s" not found' % source)
    return None, ("InternalError", "Internal error occurred: %s: registry answered %d" % (source, response.status))


class ImageImporterStandIn(PollingController):
    """Imports spec tags in a background thread. LOCAL STAND-IN, not OpenShift's importer."""

    LABEL = "image-importer-standin"
    TITLE = "image importer stand-in"

    def __init__(self, kubeconfig: str, namespaces, interval: float = 0.2):
        super().__init__(interval)
        self._api = client.CustomObjectsApi(config.new_client_from_config(config_file=kubeconfig))
        self.namespaces = list(namespaces)
        self.imports: list = []     # (namespace, stream, tag, generation, digest or reason)

    def sync(self) -> int:
        writes = 0
        for namespace in self.namespaces:
            for stream in self._api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]:
                writes += self._sync_stream(namespace, stream)
        return writes

    def _sync_stream(self, namespace: str, stream: dict) -> int:
        meta = stream["metadata"]
        tags = (stream.get("spec") or {}).get("tags") or []
        # The server assigns a generation to a tag written without one (or with 0).
        if any(not tag.get("generation") for tag in tags):
            top = max([meta.get("generation") or 1] + [tag.get("generation") or 0 for tag in tags]) + 1
            fixed = [dict(tag, generation=tag.get("generation") or top) for tag in tags]
            return self._patch(meta, {"spec": {"tags": fixed}})
        status_tags = {t.get("tag"): t for t in (stream.get("status") or {}).get("tags") or []}
        changed = False
        for tag in tags:
            source = tag.get("from") or {}
            if source.get("kind") != "DockerImage":
                continue
            generation = tag["generation"]
            current = status_tags.get(tag["name"]) or {"tag": tag["name"], "items": []}
            done = [i for i in current.get("items") or [] if (i.get("generation") or 0) >= generation]
            done += [c for c in current.get("conditions") or [] if (c.get("generation") or 0) >= generation]
            if done:
                continue
            digest, problem = resolve(source["name"], bool((tag.get("importPolicy") or {}).get("insecure")))
            entry = dict(current)
            if digest:
                reference = "%s@%s" % (repository_of(source["name"]), digest)
                entry["items"] = [{"created": _now(), "dockerImageReference": reference, "image": digest,
                                   "generation": generation}] + list(current.get("items") or [])
                entry["conditions"] = []
                self.imports.append((namespace, meta["name"], tag["name"], generation, digest))
            else:
                entry["conditions"] = [{"type": "ImportSuccess", "status": "False", "reason": problem[0],
                                        "message": problem[1], "generation": generation,
                                        "lastTransitionTime": _now()}]
                self.imports.append((namespace, meta["name"], tag["name"], generation, problem[0]))
            status_tags[tag["name"]] = entry
            changed = True
        if not changed:
            return 0
        ordered = [status_tags[name] for name in sorted(status_tags)]
        return self._patch(meta, {"status": {"tags": ordered}}, status=True)

    def _patch(self, meta: dict, body: dict, status: bool = False) -> int:
        return merge_patch_custom_object(self._api, GROUP, VERSION, PLURAL, meta, body, status)
