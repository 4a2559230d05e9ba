"""The demo's two steps that need the local cluster's facts (scripts/demo.sh).

    demo_local.py vars STATE_DIR DEMO_VARS OUT
        demo.yml's parts with the local registry's address and credentials in OUT (mode
        0600, in the cluster's state directory: never in the repository).
    demo_local.py pods STATE_DIR SUMMARY
        one pod per demo namespace that pulls the private image through the secrets
        site.yml made; waits until they run; prints (and writes to SUMMARY) the secrets,
        the service accounts, the pods and the containerd DaemonSet's pod on the node.
        Exits non-zero if a pod is not Running.
"""

from __future__ import annotations

import json
import os
import sys
import time

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "cluster"))

import localnode  # noqa: E402  pylint: disable=wrong-import-position

MANAGED = "app.kubernetes.io/managed-by=ibmcloud.registry"
POD = "demo-app"
POD_TIMEOUT = 180


def _cluster(state_dir: str) -> dict:
    with open(os.path.join(state_dir, "cluster.json"), encoding="utf-8") as src:
        return json.load(src)


def write_vars(state_dir: str, demo_vars: str, out: str) -> None:
    registry = _cluster(state_dir)["registry"]
    with open(demo_vars, encoding="utf-8") as src:
        demo = yaml.safe_load(src)
    local = {"server": registry["host"], "username": registry["username"], "password": registry["password"]}
    pull = demo["pull_secrets"]
    pull["secrets"] = [dict(s, registry=local) if s.get("name") == "demo-private-registry" else s
                       for s in pull["secrets"]]
    # The local registry's password of user `cp` plays the entitlement key; the node sends
    # pulls of cp.icr.io to the local registry (its hosts.toml).
    demo["entitled_registry"]["entitlement_key"] = registry["entitlement_key"]
    # Images the node has (imported at its start); on IBM Cloud the role's defaults apply.
    demo["containerd_hosts"].update(init_image=localnode.LOCAL_APP_IMAGE, pause_image=localnode.PAUSE_IMAGE)
    # demo_prepare.yml: the STAND-IN all-icr-io holds the local registry's credentials.
    local_vars = {"demo_all_icr_io_registry": local}
    local_vars.update((part, demo[part]) for part in ("pull_secrets", "entitled_registry", "containerd_hosts"))
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(local_vars, handle, indent=2)  # JSON is YAML


def _waiting(pod) -> str:
    waiting = [c.state.waiting for c in pod.status.container_statuses or [] if c.state.waiting]
    return "; ".join("%s: %s" % (w.reason, w.message) for w in waiting)


def pods(state_dir: str, summary: str) -> int:
    from kubernetes import client, config  # pylint: disable=import-outside-toplevel

    registry = _cluster(state_dir)["registry"]
    api = config.new_client_from_config(config_file=os.path.join(state_dir, "kubeconfig-fixture"))
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    # demo-apps: through the copy of all-icr-io; demo-web: demo-private-registry (and the
    # copy); demo-cp: the entitlement key, by the entitled registry's name.
    images = {"demo-apps": registry["image"], "demo-web": registry["image"], "demo-cp": registry["entitled_image"]}
    for namespace, image in images.items():
        # No secret named in the pod, the namespace's default ServiceAccount, a pull every
        # time (an image cached on the node would hide a missing secret).
        core.create_namespaced_pod(namespace, {
            "metadata": {"name": POD},
            "spec": {"hostNetwork": True, "automountServiceAccountToken": False,
                     "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "app", "image": image, "imagePullPolicy": "Always",
                                     "command": ["sh", "-c", "echo pulled; exec sleep 3600"]}]}})
    deadline = time.monotonic() + POD_TIMEOUT
    while True:
        found = {namespace: core.read_namespaced_pod(POD, namespace) for namespace in images}
        if all(p.status.phase == "Running" for p in found.values()) or time.monotonic() > deadline:
            break
        time.sleep(1)

    lines = ["Image pull secrets made by ibmcloud.registry:"]
    for secret in sorted(core.list_secret_for_all_namespaces(label_selector=MANAGED).items,
                         key=lambda s: (s.metadata.namespace, s.metadata.name)):
        lines.append("  %-10s %-24s %s" % (secret.metadata.namespace, secret.metadata.name, secret.type))
    lines.append("Service accounts that use them (imagePullSecrets):")
    for namespace in images:
        refs = core.read_namespaced_service_account("default", namespace).image_pull_secrets or []
        lines.append("  %-10s default -> %s" % (namespace, ", ".join(r.name for r in refs)))
    lines.append("Pods (ServiceAccount default, no secret named in the pod, imagePullPolicy Always):")
    failed = []
    for namespace, pod in found.items():
        why = _waiting(pod)
        lines.append("  %-10s %s: %s on node %s, image %s%s" % (
            namespace, POD, pod.status.phase, pod.spec.node_name, pod.spec.containers[0].image,
            " (%s)" % why if why else ""))
        if pod.status.phase != "Running":
            failed.append("%s/%s" % (namespace, POD))
    for daemonset in apps.list_daemon_set_for_all_namespaces(label_selector=MANAGED).items:
        status = daemonset.status
        lines.append("containerd hosts.toml DaemonSet %s/%s: %d of %d node(s) updated and available" % (
            daemonset.metadata.namespace, daemonset.metadata.name,
            min(status.updated_number_scheduled or 0, status.number_available or 0),
            status.desired_number_scheduled or 0))
        selector = ",".join("%s=%s" % item for item in daemonset.spec.selector.match_labels.items())
        ds_pods = core.list_namespaced_pod(daemonset.metadata.namespace, label_selector=selector).items
        if not ds_pods:
            failed.append("a pod of DaemonSet %s" % daemonset.metadata.name)
        for pod in ds_pods:
            why = _waiting(pod)
            lines.append("  pod %s: %s on node %s%s" % (
                pod.metadata.name, pod.status.phase, pod.spec.node_name, " (%s)" % why if why else ""))
            if pod.status.phase != "Running":
                failed.append("%s/%s" % (pod.metadata.namespace, pod.metadata.name))
    print("\n".join(lines))
    with open(summary, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    api.close()
    if failed:
        print("not Running: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


def main(argv: list) -> int:
    if len(argv) == 4 and argv[0] == "vars":
        write_vars(*argv[1:])
        return 0
    if len(argv) == 3 and argv[0] == "pods":
        return pods(*argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
