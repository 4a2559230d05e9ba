"""The floor: the raw kubernetes Python client doing the same writes, nothing else.

One LIST of the namespaces by label selector, then per namespace one CREATE of the
dockerconfigjson secret and one strategic-merge PATCH of the `default` service
account, with a pool of --parallelism threads. No reads of existing state, no
comparison, no retries: what "N namespaces get a pull secret" costs at least.

Where the secret's content comes from, as the module under comparison gets it:

- --dockerconfig FILE: ready-made (icr_pull_secret with iam_api_key);
- --iam-url URL --service-id NAME: the calls iam_pull_secret makes to IAM on a first run
  with the IBM Cloud SDK (token exchange, the service ID looked up by name, one API key
  created, a login with it, the service ID's keys listed), the key written for every server of --servers-file; the caller's API key is
  read from $IBMREG_BENCH_IAM_KEY, never from the command line;
- --openshift-source NAMESPACE/SA --server HOST[:PORT]: what ocp_internal_pull_secret reads
  (the service account, then its <sa>-dockercfg-* secret), its credentials for --server.

Run as its own process (so its peak memory is its own); prints one JSON line with
`work_seconds`: from the first request to the last response, after imports and
client setup.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

IAM_USERNAME = "iamapikey"
IAM_ACCOUNT_ENV = "IBMREG_BENCH_IAM_ACCOUNT"


def dockerconfig(servers: list, username: str, password: str) -> bytes:
    """Compact, key-sorted JSON, as the collection stores it."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    entry = {"username": username, "password": password, "auth": auth}
    return json.dumps({"auths": {server: entry for server in servers}}, sort_keys=True,
                      separators=(",", ":")).encode()


def iam_identity(args):
    """The SDK's IAM Identity client (no request yet: the token exchange is lazy)."""
    # pylint: disable=import-outside-toplevel
    from ibm_cloud_sdk_core.authenticators import IAMAuthenticator
    from ibm_platform_services import IamIdentityV1

    identity = IamIdentityV1(authenticator=IAMAuthenticator(os.environ["IBMREG_BENCH_IAM_KEY"], url=args.iam_url))
    identity.set_service_url(args.iam_url)
    return identity


def from_iam(identity, args) -> bytes:
    """Token exchange, service ID by name, one new API key (the module's first-run IAM calls)."""
    from ibm_cloud_sdk_core.authenticators import IAMAuthenticator  # pylint: disable=import-outside-toplevel
    account = os.environ[IAM_ACCOUNT_ENV]
    service = identity.list_service_ids(account_id=account, name=args.service_id,
                                        pagesize=100).get_result()["serviceids"][0]
    key = identity.create_api_key(name=f"{args.service_id}-key", iam_id=service["iam_id"], account_id=account,
                                  store_value=False).get_result()["apikey"]
    # As the module does: log in with the new key before any secret gets it, and list the
    # service ID's keys (those a rotation would retire).
    IAMAuthenticator(key, url=args.iam_url).token_manager.request_token()
    identity.list_api_keys(account_id=account, iam_id=service["iam_id"], pagesize=100)
    with open(args.servers_file, encoding="utf-8") as handle:
        servers = json.load(handle)
    return dockerconfig(servers, IAM_USERNAME, key)


def from_openshift(core, args) -> bytes:
    """The service account's <sa>-dockercfg-* secret, its credentials for --server."""
    namespace, account = args.openshift_source.split("/", 1)
    sa = core.read_namespaced_service_account(account, namespace)
    name = next(ref.name for ref in sa.image_pull_secrets if ref.name.startswith(f"{account}-dockercfg-"))
    secret = core.read_namespaced_secret(name, namespace)
    entries = json.loads(base64.b64decode(secret.data[".dockercfg"]))
    entry = next(iter(entries.values()))
    username, password = entry.get("username"), entry.get("password")
    if not password:  # OpenShift 4.16's shape: only auth
        username, password = base64.b64decode(entry["auth"]).decode().split(":", 1)
    return dockerconfig([args.server], username, password)


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--selector", required=True, help="namespace label selector")
    parser.add_argument("--name", required=True, help="secret name")
    parser.add_argument("--dockerconfig", help="file with the dockerconfig JSON")
    parser.add_argument("--iam-url", help="IAM endpoint (the stand-in): mint the key there")
    parser.add_argument("--service-id", help="with --iam-url: the service ID's name")
    parser.add_argument("--servers-file", help="with --iam-url: JSON list of the registry servers")
    parser.add_argument("--openshift-source", metavar="NAMESPACE/SA",
                        help="copy the credentials of this service account's dockercfg secret")
    parser.add_argument("--server", help="with --openshift-source: registry server of the secret")
    parser.add_argument("--parallelism", type=int, default=8)
    args = parser.parse_args(argv)
    if sum(bool(v) for v in (args.dockerconfig, args.iam_url, args.openshift_source)) != 1:
        parser.error("give one of --dockerconfig, --iam-url, --openshift-source")

    from kubernetes import client, config  # pylint: disable=import-outside-toplevel

    core = client.CoreV1Api(config.new_client_from_config(config_file=args.kubeconfig))
    sa_patch = {"imagePullSecrets": [{"name": args.name}]}
    data = {}
    identity = iam_identity(args) if args.iam_url else None

    def write(namespace: str) -> None:
        core.create_namespaced_secret(namespace, {
            "metadata": {"name": args.name}, "type": "kubernetes.io/dockerconfigjson", "data": data})
        core.patch_namespaced_service_account("default", namespace, sa_patch)

    started = time.perf_counter()
    if args.dockerconfig:
        with open(args.dockerconfig, "rb") as handle:
            content = handle.read()
    elif args.iam_url:
        content = from_iam(identity, args)
    else:
        content = from_openshift(core, args)
    data[".dockerconfigjson"] = base64.b64encode(content).decode("ascii")
    names = [ns.metadata.name for ns in core.list_namespace(label_selector=args.selector).items]
    with ThreadPoolExecutor(max_workers=args.parallelism) as pool:
        list(pool.map(write, names))
    print(json.dumps({"work_seconds": time.perf_counter() - started, "namespaces": len(names)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
