"""The floor: the raw kubernetes Python client doing the same writes, nothing else.

One LIST of the namespaces by label selector, then per namespace one CREATE of the
dockerconfigjson secret and one strategic-merge PATCH of the `default` service
account, with a pool of --parallelism threads. No reads of existing state, no
comparison, no retries: what "N namespaces get a pull secret" costs at least.

Run as its own process (so its peak memory is its own); prints one JSON line with
`work_seconds`: from the first request to the last response, after imports and
client setup.
"""

from __future__ import annotations

import argparse
import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--selector", required=True, help="namespace label selector")
    parser.add_argument("--name", required=True, help="secret name")
    parser.add_argument("--dockerconfig", required=True, help="file with the dockerconfig JSON")
    parser.add_argument("--parallelism", type=int, default=8)
    args = parser.parse_args(argv)

    from kubernetes import client, config  # pylint: disable=import-outside-toplevel

    core = client.CoreV1Api(config.new_client_from_config(config_file=args.kubeconfig))
    with open(args.dockerconfig, "rb") as handle:
        data = {".dockerconfigjson": base64.b64encode(handle.read()).decode("ascii")}
    sa_patch = {"imagePullSecrets": [{"name": args.name}]}

    def write(namespace: str) -> None:
        core.create_namespaced_secret(namespace, {
            "metadata": {"name": args.name}, "type": "kubernetes.io/dockerconfigjson", "data": data})
        core.patch_namespaced_service_account("default", namespace, sa_patch)

    started = time.perf_counter()
    names = [ns.metadata.name for ns in core.list_namespace(label_selector=args.selector).items]
    with ThreadPoolExecutor(max_workers=args.parallelism) as pool:
        list(pool.map(write, names))
    print(json.dumps({"work_seconds": time.perf_counter() - started, "namespaces": len(names)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
