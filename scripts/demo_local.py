"""The demo's steps that need the local cluster's facts or its stand-ins (scripts/demo.sh).

    demo_local.py standins STATE_DIR
        in the foreground until SIGTERM (demo.sh runs it in the background): the LOCAL
        STAND-INS of the IAM part, on loopback only - IBM Cloud IAM
        (tests/standins/iam_server.py) and us.icr.io as a token-auth docker-registry with
        the token service stand-in (tests/standins/token_registry.py), holding the demo
        image as us.icr.io/demo-namespace/busybox:1. The node's hosts.toml mirrors
        us.icr.io to it. Writes STATE_DIR/standins/standins.json (mode 0600: the stand-in's
        admin key) once ready, and their logs (never a key) to standins/log.json. Stops by
        itself when the demo's cluster stops.
    demo_local.py stop-standins STATE_DIR
        stops them (and a docker-registry they left behind). Stdlib only.
    demo_local.py vars STATE_DIR DEMO_VARS OUT
        demo.yml's parts with the local registry's address and credentials and the IAM
        stand-in's URL and key in OUT (mode 0600, in the cluster's state directory: never
        in the repository).
    demo_local.py pods STATE_DIR SUMMARY
        one pod per demo namespace that pulls its image through the secrets site.yml
        made; waits until they run; prints (and writes to SUMMARY) the secrets, the service
        accounts, the pods, the containerd DaemonSet's pod on the node, and what the IAM
        and token service stand-ins saw. Exits non-zero if a pod is not Running or the
        us.icr.io pull did not go through the IAM-minted key.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "cluster"))
sys.path.insert(0, os.path.join(REPO, "tests", "standins"))

import localnode  # noqa: E402  pylint: disable=wrong-import-position

MANAGED = "app.kubernetes.io/managed-by=ibmcloud.registry"
POD = "demo-app"
POD_TIMEOUT = 180
# The IAM part's namespace (playbooks/vars/demo.yml iam_pull_secret.namespaces) and the
# registry namespace of us.icr.io that its policy covers and the stand-in registry holds.
IAM_NAMESPACE = "demo-iam"
ICR_NAMESPACE = "demo-namespace"
ICR_REPOSITORY = ICR_NAMESPACE + "/busybox"
US = "us.icr.io"
STANDINS = "standins"  # under the state dir
READY_TIMEOUT = 120


def _cluster(state_dir: str) -> dict:
    with open(os.path.join(state_dir, "cluster.json"), encoding="utf-8") as src:
        return json.load(src)


def _standins_file(state_dir: str, name: str) -> str:
    return os.path.join(state_dir, STANDINS, name)


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8") as src:
            return json.load(src)
    except (OSError, ValueError):
        return None


def _write_private(path: str, document) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)  # JSON is YAML
    os.replace(tmp, path)


# --- the stand-ins -------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    # A zombie is gone for our purpose.
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as src:
            return src.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _backstop(state_dir: str, names: tuple) -> list:
    """What the node resolves the icr.io names to, inside its own mount namespace."""
    holder = _cluster(state_dir)["pids"]["node-ns"]
    lines = []
    for name in names:
        resolved = subprocess.run(["nsenter", "--mount=/proc/%d/ns/mnt" % holder, "--", "getent", "hosts", name],
                                  capture_output=True, text=True, check=False, timeout=30)
        address = (resolved.stdout.split() or ["(none)"])[0]
        if address != "127.0.0.1":
            raise RuntimeError("backstop missing: the node resolves %s to %s, not 127.0.0.1" % (name, address))
        lines.append(name)
    return lines


def standins(state_dir: str) -> int:
    # pylint: disable=import-outside-toplevel
    import secrets
    import threading

    import iam_server
    import token_registry

    class UsIcrIo(token_registry.TokenRegistries):
        """us.icr.io only: the demo's entitled registry stays the local one (demo-cp)."""

        DOMAINS = (token_registry.IAM_DOMAIN,)

        def _start_registry(self, domain):
            if domain in self.DOMAINS:
                super()._start_registry(domain)

    base = os.path.join(state_dir, STANDINS)
    os.makedirs(base, exist_ok=True)
    with open(os.path.join(base, "pid"), "w", encoding="ascii") as out:
        out.write("%d\n" % os.getpid())
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_args: stop.set())
    cluster_pids = _cluster(state_dir)["pids"]
    # Not a real key: the one key the IAM stand-in lets call its API, made for this run.
    admin_key = "STAND-IN-iam-admin-key-" + secrets.token_urlsafe(24)
    iam = iam_server.IamStandIn().start()
    regs = None
    try:
        iam.add_admin_key(admin_key)
        regs = UsIcrIo(os.path.join(base, "registry"), iam.url, admin_key).start()
        # The image goes in as the stand-in's publisher, a path the collection never uses.
        regs.publish(localnode.app_layout(), localnode.APP_TAG, US, ICR_REPOSITORY)
        backstop = _backstop(state_dir, (US, "icr.io", "cp.icr.io"))
        certs = os.path.join(localnode.node_dir(state_dir), "certs.d")
        with regs.node_hosts(certs):
            image = "%s/%s:%s" % (US, ICR_REPOSITORY, localnode.APP_TAG)
            _write_private(os.path.join(base, "standins.json"), {
                "pid": os.getpid(), "iam_url": iam.url, "admin_key": admin_key, "image": image,
                "us_icr_io": regs.addresses[US], "token_realm": regs.token.realm,
                "registry_pids": [p.pid for p in regs.procs.values()],
                "hosts_toml": os.path.join(certs, US, "hosts.toml")})
            print("STAND-IN IBM Cloud IAM (tests/standins/iam_server.py): %s, one admin key made for this run"
                  % iam.url)
            print("STAND-IN us.icr.io: docker-registry with token auth at https://%s, holding %s;"
                  % (regs.addresses[US], image))
            print("  its token service STAND-IN (tests/standins/token_service.py) at %s asks the IAM stand-in"
                  % regs.token.realm)
            print("The node's hosts.toml sends us.icr.io to https://%s (%s)"
                  % (regs.addresses[US], os.path.join(certs, US)))
            print("Backstop: the node's /etc/hosts maps %s to 127.0.0.1" % ", ".join(backstop))
            sys.stdout.flush()
            seen = None
            while not stop.wait(1.0):
                logged = (iam.mark(), regs.token.mark())
                if logged != seen:
                    seen = logged
                    _write_private(os.path.join(base, "log.json"), {
                        "written": time.time(), "iam": iam.snapshot(), "iam_requests": iam.requests(),
                        "token_requests": regs.token.requests()})
                now = _read_json(os.path.join(state_dir, "cluster.json"))
                if not now or now.get("pids") != cluster_pids or not _alive(cluster_pids["kube-apiserver"]):
                    print("the demo's cluster stopped: the stand-ins stop too", flush=True)
                    break
    finally:
        if regs is not None:
            regs.stop()
        iam.stop()
        for name in ("standins.json", "pid"):
            try:
                os.remove(os.path.join(base, name))
            except FileNotFoundError:
                pass
    return 0


def stop_standins(state_dir: str) -> int:
    """SIGTERM to the stand-ins' process (it stops its registry), then anything it left."""
    info = _read_json(_standins_file(state_dir, "standins.json")) or {}
    try:
        with open(_standins_file(state_dir, "pid"), encoding="ascii") as src:
            pid = int(src.read().strip())
    except (OSError, ValueError):
        pid = info.get("pid")
    stopped = []
    if pid and _alive(pid) and "demo_local.py standins" in _cmdline(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        stopped.append("stand-ins (pid %d)" % pid)
    for leftover in info.get("registry_pids", []):
        if _alive(leftover) and "docker-registry" in _cmdline(leftover):
            os.kill(leftover, signal.SIGKILL)
            stopped.append("a docker-registry left behind (pid %d)" % leftover)
    for name in ("standins.json", "pid"):
        try:
            os.remove(_standins_file(state_dir, name))
        except FileNotFoundError:
            pass
    print("stopped: " + ", ".join(stopped) if stopped else "stand-ins: not running")
    return 0


# --- vars ------------------------------------------------------------------------------------


def write_vars(state_dir: str, demo_vars: str, out: str) -> None:
    import yaml  # pylint: disable=import-outside-toplevel

    registry = _cluster(state_dir)["registry"]
    standin = _read_json(_standins_file(state_dir, "standins.json"))
    if not standin:
        raise SystemExit("the stand-ins are not running (%s)" % _standins_file(state_dir, "standins.json"))
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
    # IBM Cloud IAM is the stand-in on loopback, with its admin key (never a real one).
    demo["iam_pull_secret"].update(iam_url=standin["iam_url"], ibmcloud_api_key=standin["admin_key"])
    # demo_prepare.yml: the STAND-IN all-icr-io holds the local registry's credentials, and
    # the IAM part's namespace is made like the others.
    local_vars = {"demo_all_icr_io_registry": local, "demo_iam_namespaces": demo["iam_pull_secret"]["namespaces"]}
    local_vars.update((part, demo[part])
                      for part in ("pull_secrets", "entitled_registry", "containerd_hosts", "iam_pull_secret"))
    _write_private(out, local_vars)


# --- pods and the summary --------------------------------------------------------------------


def _waiting(pod) -> str:
    waiting = [c.state.waiting for c in pod.status.container_statuses or [] if c.state.waiting]
    return "; ".join("%s: %s" % (w.reason, w.message) for w in waiting)


def _attribute(policy: dict, key: str, section: str = "resource") -> str:
    for attribute in policy.get(section, {}).get("attributes", []):
        if attribute.get("key") == key:
            return attribute.get("value")
    return ""


def _iam_lines(state_dir: str, core, since: float) -> tuple:
    """(summary lines, problems): what site.yml made in the IAM stand-in, and whether the
    us.icr.io pull used the key it put into the secret."""
    path = _standins_file(state_dir, "log.json")
    deadline = time.monotonic() + 15
    log = _read_json(path)
    while (not log or log["written"] < since) and time.monotonic() < deadline:
        time.sleep(0.5)  # the stand-ins write their log once a second
        log = _read_json(path)
    if not log:
        return [], ["no log of the stand-ins (%s)" % path]
    lines = ["IBM Cloud IAM STAND-IN (tests/standins/iam_server.py), what site.yml made there:"]
    problems = []
    snapshot = log["iam"]
    iam_ids = {}
    for sid in snapshot["service_ids"]:
        iam_ids[sid["iam_id"]] = sid["name"]
        lines.append("  service ID %s (%s)" % (sid["name"], sid["iam_id"]))
        for policy in snapshot["policies"]:
            if _attribute(policy, "iam_id", "subject") != sid["iam_id"]:
                continue
            roles = [r["role_id"].rsplit(":", 1)[-1] for r in policy["control"]["grant"]["roles"]]
            lines.append("    policy: %s on %s, region %s, registry namespace %s" % (
                "+".join(roles), _attribute(policy, "serviceName"), _attribute(policy, "region") or "any",
                _attribute(policy, "resource") or "any"))
        for key in snapshot["api_keys"]:
            if key["iam_id"] == sid["iam_id"]:
                lines.append("    API key %s (%s), value only in the pull secret" % (key["name"], key["id"]))
    secret_names = [s.metadata.name for s in core.list_namespaced_secret(IAM_NAMESPACE, label_selector=MANAGED).items]
    lines.append("  pull secret in %s: %s" % (IAM_NAMESPACE, ", ".join(secret_names) or "(none)"))
    scope = "repository:%s:pull" % ICR_REPOSITORY
    pulls = [e for e in log["token_requests"] if e["time"] >= since]
    granted = [e for e in pulls if e["service"] == US and e["username"] == "iamapikey"
               and e["status"] == 200 and scope in e["scopes"]]
    refused = [e for e in pulls if e["status"] != 200]
    # The token service logs in to IAM with the key it was given (the log has who logged in,
    # never the key): since the pods were made, only the pull can have used the minted key.
    checked = [iam_ids[e["iam_id"]] for e in log["iam_requests"]
               if e["path"] == "/identity/token" and e.get("iam_id") in iam_ids and e["time"] >= since]
    lines.append("us.icr.io token service STAND-IN (tests/standins/token_service.py):")
    lines.append("  since the pods were made: %d token(s) for %s to user iamapikey, %d refused"
                 % (len(granted), scope, len(refused)))
    lines.append("  the IAM stand-in saw the token service log in with the key of: %s" % (
        ", ".join(sorted(set(checked))) or "(no service ID)"))
    if not granted:
        problems.append("the token service stand-in granted no %s to iamapikey" % scope)
    if not checked:
        problems.append("no pull used an API key of a service ID that site.yml made")
    return lines, problems


def pods(state_dir: str, summary: str) -> int:
    from kubernetes import client, config  # pylint: disable=import-outside-toplevel

    registry = _cluster(state_dir)["registry"]
    standin = _read_json(_standins_file(state_dir, "standins.json"))
    if not standin:
        print("the stand-ins are not running", file=sys.stderr)
        return 1
    api = config.new_client_from_config(config_file=os.path.join(state_dir, "kubeconfig-fixture"))
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    # demo-apps: through the copy of all-icr-io; demo-web: demo-private-registry (and the
    # copy); demo-cp: the entitlement key, by the entitled registry's name; demo-iam: the
    # API key that iam_pull_secret minted, from the us.icr.io stand-in.
    images = {"demo-apps": registry["image"], "demo-web": registry["image"], "demo-cp": registry["entitled_image"],
              IAM_NAMESPACE: standin["image"]}
    started = time.time()
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
    iam_lines, problems = _iam_lines(state_dir, core, started)
    lines += iam_lines
    print("\n".join(lines))
    with open(summary, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    api.close()
    if failed:
        print("not Running: " + ", ".join(failed), file=sys.stderr)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if failed or problems else 0


def main(argv: list) -> int:
    if len(argv) == 2 and argv[0] == "standins":
        return standins(argv[1])
    if len(argv) == 2 and argv[0] == "stop-standins":
        return stop_standins(argv[1])
    if len(argv) == 4 and argv[0] == "vars":
        write_vars(*argv[1:])
        return 0
    if len(argv) == 3 and argv[0] == "pods":
        return pods(*argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
