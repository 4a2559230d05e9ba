"""Install the CustomResourceDefinitions kept in this repository into a local cluster.

The cluster has no OpenShift: its API types (Route, ImageStream, ...) are stood in for by
CRDs under tests/cluster/crds/. They are applied with the `fixture` identity, so that
test setup never counts as a request of the client under test.

Where OpenShift itself publishes a CRD (Route, the image registry operator's Config),
the real one is used instead: read at test time from the ``github.com/openshift/api`` Go
module of the version pinned in versions.env (OPENSHIFT_API_VERSION), never copied into
this repository. Those CRDs carry CEL rules (x-kubernetes-validations), which need
kube-apiserver 1.25 or later: the 1.37 cluster (localcluster.py --node).
The tests read the module from the Go module cache only (GOPROXY=off: no network while
testing); ``--fetch-openshift-api`` downloads it into the cache once, as a setup step.

CLI: python tests/cluster/crds.py [--kubeconfig K] [--timeout S] PATH [PATH ...]
(PATH: a YAML file or a directory of *.yaml/*.yml files);
python tests/cluster/crds.py --fetch-openshift-api.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import yaml
from kubernetes import client, config

import localcluster

FIELD_MANAGER = "ibmreg-tests"
HERE = os.path.dirname(os.path.abspath(__file__))
OPENSHIFT_API = "github.com/openshift/api"
# The CRD manifests openshift/api generates (all feature sets merged, the default ones).
OPENSHIFT_API_CRDS = {
    "routes.route.openshift.io": "route/v1/zz_generated.crd-manifests/routes.crd.yaml",
    "configs.imageregistry.operator.openshift.io": "imageregistry/v1/zz_generated.crd-manifests/00_configs.crd.yaml",
}
# The first release that evaluates CEL rules in CRDs by default (beta in 1.25).
CEL_MINOR = 25


def versions(path: str = os.path.join(HERE, "versions.env")) -> dict:
    values = {}
    with open(path, encoding="utf-8") as src:
        for line in src:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _sep, value = line.partition("=")
                values[key.strip()] = value.strip()
    return values


def openshift_api_dir(fetch: bool = False) -> str:
    """The directory of the pinned github.com/openshift/api module in the Go module cache.

    Without ``fetch`` the cache alone is read (GOPROXY=off), so tests never go to the
    network; a missing module is an error that names the setup step."""
    version = versions()["OPENSHIFT_API_VERSION"]
    env = dict(os.environ, GOFLAGS="-mod=mod")
    if not fetch:
        env["GOPROXY"] = "off"
    done = subprocess.run(["go", "mod", "download", "-json", "%s@%s" % (OPENSHIFT_API, version)],
                          capture_output=True, text=True, env=env, cwd=HERE, check=False)
    try:
        info = json.loads(done.stdout or "{}")
    except ValueError:
        info = {}
    if done.returncode != 0 or not info.get("Dir"):
        raise RuntimeError("%s@%s is not in the Go module cache (%s); run once: python3 tests/cluster/crds.py "
                           "--fetch-openshift-api" % (OPENSHIFT_API, version,
                                                      (info.get("Error") or done.stderr or "").strip()))
    return info["Dir"]


def openshift_api_crd_files() -> list:
    """The Route and image registry Config CRD files of the pinned openshift/api module."""
    base = openshift_api_dir()
    return [os.path.join(base, relative) for relative in OPENSHIFT_API_CRDS.values()]


def server_minor(kubeconfig: str) -> int:
    version = client.VersionApi(config.new_client_from_config(config_file=kubeconfig)).get_code()
    return int("".join(ch for ch in version.minor if ch.isdigit()))


def crd_files(paths_or_dir) -> list:
    """The YAML files named, directories expanded to their *.yaml/*.yml files in name order."""
    paths = [paths_or_dir] if isinstance(paths_or_dir, (str, os.PathLike)) else list(paths_or_dir)
    files = []
    for path in map(str, paths):
        if os.path.isdir(path):
            files.extend(sorted(os.path.join(path, name) for name in os.listdir(path)
                                if name.endswith((".yaml", ".yml"))))
        else:
            files.append(path)
    return files


def load_crds(files: list) -> list:
    crds = []
    for path in files:
        with open(path, encoding="utf-8") as src:
            for doc in yaml.safe_load_all(src):
                if not doc:
                    continue
                if doc.get("kind") != "CustomResourceDefinition":
                    raise ValueError(f"{path}: {doc.get('kind')} is not a CustomResourceDefinition")
                crds.append(doc)
    return crds


def _established(crd) -> bool:
    conditions = (crd.status.conditions or []) if crd.status else []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def install_crds(kubeconfig: str, paths_or_dir, timeout: float = 60) -> list:
    """Apply (server-side) every CRD found and wait until each is Established. Returns their names."""
    api = client.ApiextensionsV1Api(config.new_client_from_config(config_file=kubeconfig))
    names = []
    for crd in load_crds(crd_files(paths_or_dir)):
        name = crd["metadata"]["name"]
        # Server-side apply: creates or updates, so reinstalling is harmless.
        api.patch_custom_resource_definition(name, crd, field_manager=FIELD_MANAGER, force=True,
                                             _content_type="application/apply-patch+yaml")
        names.append(name)
    deadline = time.monotonic() + timeout
    pending = list(names)
    while pending:
        pending = [name for name in pending if not _established(api.read_custom_resource_definition(name))]
        if pending and time.monotonic() > deadline:
            raise TimeoutError(f"CRDs not Established after {timeout}s: {', '.join(pending)}")
        if pending:
            time.sleep(0.2)
    return names


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description="Apply CRD YAML files and wait until they are Established.")
    parser.add_argument("paths", nargs="*", help="YAML files or directories")
    parser.add_argument("--fetch-openshift-api", action="store_true",
                        help="download the pinned github.com/openshift/api module into the Go module cache")
    parser.add_argument("--kubeconfig", default=None, help="default: the fixture kubeconfig of the default cluster")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args(argv)
    if args.fetch_openshift_api:
        print(openshift_api_dir(fetch=True))
        if not args.paths:
            return 0
    if not args.paths:
        parser.error("no PATH given")
    kubeconfig = args.kubeconfig or os.path.join(localcluster.default_dir(), "kubeconfig-fixture")
    for name in install_crds(kubeconfig, args.paths, args.timeout):
        print(f"established: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
