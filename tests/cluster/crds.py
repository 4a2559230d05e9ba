"""Install the CustomResourceDefinitions kept in this repository into a local cluster.

The cluster has no OpenShift: its API types (Route, ImageStream, ...) are stood in for by
CRDs under tests/cluster/crds/. They are applied with the `fixture` identity, so that
test setup never counts as a request of the client under test.

CLI: python tests/cluster/crds.py [--kubeconfig K] [--timeout S] PATH [PATH ...]
(PATH: a YAML file or a directory of *.yaml/*.yml files).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import yaml
from kubernetes import client, config

import localcluster

FIELD_MANAGER = "ibmreg-tests"


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
    parser.add_argument("paths", nargs="+", help="YAML files or directories")
    parser.add_argument("--kubeconfig", default=None, help="default: the fixture kubeconfig of the default cluster")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args(argv)
    kubeconfig = args.kubeconfig or os.path.join(localcluster.default_dir(), "kubeconfig-fixture")
    for name in install_crds(kubeconfig, args.paths, args.timeout):
        print(f"established: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
