"""What an OpenShift 4 cluster would have, for an integration target: a LOCAL STAND-IN
(tests/standins/openshift_flavour.py and router.py), written as the `fixture` user so that
the audit log never counts it as the module's requests. This is NOT OpenShift.

  openshift_standin.py --repo R --kubeconfig FIXTURE install
  openshift_standin.py ... project NAMESPACE [--accounts default,builder]   (creates it too)
  openshift_standin.py ... build-config NAMESPACE NAME
  openshift_standin.py ... admit-routes          one pass of the router stand-in
  openshift_standin.py ... delete-namespace NAMESPACE
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True)
    parser.add_argument("--kubeconfig", required=True)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install")
    project = sub.add_parser("project")
    project.add_argument("namespace")
    project.add_argument("--accounts", default="default,builder")
    build = sub.add_parser("build-config")
    build.add_argument("namespace")
    build.add_argument("name")
    sub.add_parser("admit-routes")
    gone = sub.add_parser("delete-namespace")
    gone.add_argument("namespace")
    args = parser.parse_args()

    sys.path.insert(0, os.path.join(args.repo, "tests", "standins"))
    from kubernetes import client, config  # pylint: disable=import-outside-toplevel
    from kubernetes.client.rest import ApiException  # pylint: disable=import-outside-toplevel
    import openshift_flavour as flavour  # pylint: disable=import-outside-toplevel

    api = config.new_client_from_config(config_file=args.kubeconfig)
    if args.command == "install":
        flavour.install(args.kubeconfig, api)
        flavour.reset_config(api)
    elif args.command == "project":
        core = client.CoreV1Api(api)
        try:
            core.create_namespace({"metadata": {"name": args.namespace}})
        except ApiException as exc:
            if exc.status != 409:
                raise
        made = flavour.project(api, args.namespace, accounts=tuple(args.accounts.split(",")))
        print(json.dumps({account: secret for account, (secret, _token) in made.items()}))
        return 0
    elif args.command == "build-config":
        flavour.build_config(api, args.namespace, args.name)
    elif args.command == "admit-routes":
        from router import RouterStandIn  # pylint: disable=import-outside-toplevel
        router = RouterStandIn(args.kubeconfig)
        # First pass assigns hosts, the second admits them.
        print(json.dumps({"writes": router.sync() + router.sync()}))
        return 0
    elif args.command == "delete-namespace":
        try:
            client.CoreV1Api(api).delete_namespace(args.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
    print("{}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
