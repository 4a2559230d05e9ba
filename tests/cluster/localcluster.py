"""A real, current Kubernetes cluster on loopback for the tests: etcd, kube-apiserver and
kube-controller-manager built from Go modules by build-go.sh (versions.env, cached per
version).

With ``--node`` (node=True) it is a single-node cluster: plus kube-scheduler, one worker
node (containerd + kubelet, localnode.py) and a private registry holding a small image;
cluster.json then also has ``registry`` and ``node``. `make cluster` starts <repo>/.cluster
that way. Without it, a control plane only (cheaper, for tests where no pod must run).

<repo>/.cluster-node is an alias of the default cluster (a symlink to it): tests written
for a separate node cluster run on the one cluster.

Usable as a module (ensure_running, stop, info) and as a CLI:
    python tests/cluster/localcluster.py start|stop|status [--dir DIR] [--node] [--all]

The state directory (default <repo>/.cluster, or $IBMREG_CLUSTER_DIR) holds everything
one cluster needs, so two clusters run side by side in two directories.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import functools
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import localnode

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
READY_TIMEOUT = 90
STOP_TIMEOUT = 15
ZOMBIE_GRACE = 5

# Identities in the token file, with their groups. Tests count the requests of `admin`
# (the client under test); `fixture` sets up and tears down without being counted; the
# controller-manager has its own name so its traffic never looks like the client's.
# The scheduler is bound by default RBAC; the kubelet goes through the Node authorizer
# and NodeRestriction. Both are in every cluster's token file (kubeconfigs stay valid when
# a control plane is restarted with a node).
USERS = {
    "admin": "system:masters",
    "fixture": "system:masters",
    "system:kube-controller-manager": "system:masters",
    "system:kube-scheduler": "",
    f"system:node:{localnode.NODE_NAME}": "system:nodes",
}
NODE_READY_TIMEOUT = 120

AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
"""


@dataclasses.dataclass
class ClusterInfo:
    """What a client needs to talk to one running cluster (the content of cluster.json)."""

    state_dir: str
    server: str
    ca: str
    admin_token: str
    fixture_token: str
    kubeconfig: str
    fixture_kubeconfig: str
    audit_log: str
    pids: dict
    ports: dict
    # Node clusters only: the server's version, the node's name and the registry
    # ({host, address, ca, username, password, entitlement_key, image, entitled_image}).
    version: str = ""
    node: str = ""
    registry: dict = dataclasses.field(default_factory=dict)


def default_dir() -> str:
    return os.path.abspath(os.environ.get("IBMREG_CLUSTER_DIR") or os.path.join(REPO, ".cluster"))


NODE_ALIAS = os.path.join(REPO, ".cluster-node")


def canonical_dir(state_dir: str | None = None) -> str:
    """The state directory a path stands for: <repo>/.cluster-node is the default cluster.

    The alias is a symlink, so that files read by path (node/containerd.toml) are the
    default cluster's; a real directory there (a separate node cluster of an older
    checkout) is stopped and replaced by the link.
    """
    path = os.path.abspath(state_dir or default_dir())
    if path != NODE_ALIAS:
        return path
    target = default_dir()
    if target == NODE_ALIAS:
        return path
    if os.path.islink(path):
        if os.path.realpath(path) == os.path.realpath(target):
            return target
        os.remove(path)
    elif os.path.isdir(path):
        with _locked(path):
            _stop_unlocked(path)
        shutil.rmtree(path)
    os.makedirs(target, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # another process made it just now
        os.symlink(target, path)
    return target


def _path(state_dir: str, *parts: str) -> str:
    return os.path.join(state_dir, *parts)


# --- processes -------------------------------------------------------------------------

def _stat(pid: int) -> tuple | None:
    """(state, kernel start time) of a process; the start time guards against recycled pids."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], fields[19]


def _alive(proc: dict) -> bool:
    stat = _stat(proc["pid"])
    return stat is not None and stat[1] == proc["start"] and stat[0] not in ("Z", "X")


def _gone(proc: dict) -> bool:
    """Not even a zombie is left (a zombie still shows up in pgrep)."""
    stat = _stat(proc["pid"])
    return stat is None or stat[1] != proc["start"]


def _spawn(state_dir: str, name: str, argv: list, env: dict | None = None) -> dict:
    # A new session per component: stop() can signal the whole process group.
    with open(_path(state_dir, "logs", f"{name}.log"), "ab") as log:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True, cwd=state_dir, env=env)
    return {"pid": child.pid, "start": _stat(child.pid)[1]}


def _signal_group(proc: dict, sig: int) -> None:
    if _alive(proc):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc["pid"], sig)


def _reap(pid: int) -> None:
    # Only children of this process can be reaped; others are reaped by init.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _wait_until(procs: dict, timeout: float, done) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs.values():
            _reap(proc["pid"])
        if all(done(proc) for proc in procs.values()):
            return True
        time.sleep(0.1)
    return False


def _stop_one(proc: dict) -> None:
    _signal_group(proc, signal.SIGTERM)
    if _wait_until({"": proc}, STOP_TIMEOUT, lambda p: not _alive(p)):
        return
    _signal_group(proc, signal.SIGKILL)
    if not _wait_until({"": proc}, STOP_TIMEOUT, lambda p: not _alive(p)):
        raise RuntimeError(f"process still running after SIGKILL: {proc}")


def _terminate(procs: dict, state_dir: str | None = None, node_ns: str | None = None) -> None:
    # Reverse start order: kube-apiserver hangs in its graceful shutdown if etcd goes first.
    # A node goes first: kubelet, then its containers, shims and containerd, its mount
    # namespace and cgroups (localnode.stop).
    if "kubelet" in procs:
        _stop_one(procs["kubelet"])
    if state_dir and ("node-ns" in procs or node_ns):
        localnode.stop(state_dir, node_ns)
    for proc in reversed(list(procs.values())):
        _stop_one(proc)
    # Dead now. Zombies go once their parent reaps them: this process, or init for a CLI
    # start. A zombie of another live process (which started the cluster) stays until
    # that process reaps it, so this wait is bounded and does not fail.
    _wait_until(procs, ZOMBIE_GRACE, _gone)


# --- files -----------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _make_pki(pki: str) -> None:
    """A CA, a serving certificate for loopback signed by it, and the service account keys."""
    if os.path.exists(os.path.join(pki, "sa.pub")):
        return
    os.makedirs(pki, exist_ok=True)
    p = functools.partial(os.path.join, pki)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", "/CN=ibmreg-local-ca",
             "-keyout", p("ca.key"), "-out", p("ca.crt"),
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kube-apiserver",
             "-keyout", p("apiserver.key"), "-out", p("apiserver.csr"))
    with open(p("apiserver.ext"), "w", encoding="ascii") as ext:
        ext.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                  "extendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
                  "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
                  "DNS:kubernetes.default.svc,IP:10.96.0.1\n")
    _openssl("x509", "-req", "-in", p("apiserver.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
             "-CAcreateserial", "-days", "3650", "-extfile", p("apiserver.ext"), "-out", p("apiserver.crt"))
    _openssl("genrsa", "-out", p("sa.key"), "2048")
    _openssl("rsa", "-in", p("sa.key"), "-pubout", "-out", p("sa.pub"))


def _tokens(state_dir: str, users: dict) -> dict:
    """Token per user, kept across restarts so that written kubeconfigs stay valid."""
    path = _path(state_dir, "tokens.csv")
    tokens = {}
    if os.path.exists(path):
        with open(path, encoding="ascii") as csv:
            for line in csv:
                token, user = line.split(",")[:2]
                tokens[user] = token
    if set(tokens) != set(users):
        tokens = {user: secrets.token_hex(24) for user in users}
        with open(path, "w", encoding="ascii") as csv:
            for user, groups in users.items():
                csv.write(f'{tokens[user]},{user},{user},"{groups}"\n')
        os.chmod(path, 0o600)
    return tokens


def write_kubeconfig(path: str, server: str, ca: str, user: str, token: str) -> str:
    # JSON is valid YAML: kubectl, the Python client and kubernetes.core all read it.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": ca}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }
    with open(path, "w", encoding="utf-8") as out:
        json.dump(config, out, indent=2)
    os.chmod(path, 0o600)
    return path


# --- readiness -------------------------------------------------------------------------

def _get(url: str, token: str | None = None, ca: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    context = ssl.create_default_context(cafile=ca) if ca else None
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except (OSError, ssl.SSLError):
        return 0


def _healthy(cluster: ClusterInfo, state: dict) -> bool:
    return (all(_alive(proc) for proc in state["procs"].values())
            and _get(cluster.server + "/readyz", cluster.admin_token, cluster.ca) == 200)


def _get_json(cluster: ClusterInfo, path: str) -> dict | None:
    request = urllib.request.Request(cluster.server + path,
                                     headers={"Authorization": f"Bearer {cluster.fixture_token}"})
    try:
        with urllib.request.urlopen(request, timeout=5,
                                    context=ssl.create_default_context(cafile=cluster.ca)) as response:
            return json.load(response)
    except (OSError, ssl.SSLError, ValueError):
        return None


def _log_tail(state_dir: str, name: str, lines: int = 25) -> str:
    try:
        with open(_path(state_dir, "logs", f"{name}.log"), encoding="utf-8", errors="replace") as log:
            return "".join(log.readlines()[-lines:])
    except OSError:
        return ""


def _wait(state_dir: str, procs: dict, what: str, check, timeout: float = READY_TIMEOUT) -> None:
    """Poll check() until it is true; fail early, with the log, if a component died."""
    deadline = time.monotonic() + timeout
    while not check():
        for name, proc in procs.items():
            if not _alive(proc):
                raise RuntimeError(f"{name} exited while waiting for {what}:\n{_log_tail(state_dir, name)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout}s (logs in {state_dir}/logs)")
        time.sleep(0.2)


# --- start / stop ----------------------------------------------------------------------

def go_bin_dirs() -> dict:
    """{component: bin dir} of the Go-module builds (build-go.sh; cached per version)."""
    out = subprocess.run(["bash", os.path.join(HERE, "build-go.sh")], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return dict(line.split("=", 1) for line in out.strip().splitlines() if "=" in line)


def _apiserver_argv(bin_dir: str, state_dir: str, ports: dict) -> list:
    pki = _path(state_dir, "pki")
    # The Node authorizer and NodeRestriction for the kubelet; the kubelet is reached by its
    # name (localhost), never by the VM's eth0 address, with a client certificate its x509
    # authentication accepts. Priority and fairness stay on, as on every current cluster
    # (system:masters, all of the tests' identities but the node's, is exempt).
    return [
        os.path.join(bin_dir, "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{ports['etcd_client']}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports['apiserver']}",
        f"--tls-cert-file={pki}/apiserver.crt",
        f"--tls-private-key-file={pki}/apiserver.key",
        f"--token-auth-file={state_dir}/tokens.csv",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        f"--service-account-key-file={pki}/sa.pub",
        f"--service-account-signing-key-file={pki}/sa.key",
        "--service-account-issuer=https://kubernetes.default.svc",
        "--service-cluster-ip-range=10.96.0.0/24",
        "--kubelet-preferred-address-types=Hostname",
        f"--kubelet-client-certificate={pki}/kubelet-client.crt",
        f"--kubelet-client-key={pki}/kubelet-client.key",
        f"--audit-policy-file={state_dir}/audit-policy.yaml",
        f"--audit-log-path={state_dir}/audit.log",
        "--audit-log-format=json",
        "--audit-log-mode=blocking",
        "--audit-log-maxsize=0",
    ]


def _controller_manager_argv(bin_dir: str, state_dir: str) -> list:
    pki = _path(state_dir, "pki")
    return [
        os.path.join(bin_dir, "kube-controller-manager"),
        f"--kubeconfig={state_dir}/kubeconfig-controller-manager",
        f"--service-account-private-key-file={pki}/sa.key",
        f"--root-ca-file={pki}/ca.crt",
        "--controllers=*",
        "--leader-elect=false",
        "--secure-port=0",
        # The default QPS makes 1000 new namespaces wait over 20 s for their `default` SA.
        "--kube-api-qps=500",
        "--kube-api-burst=1000",
    ]


def _scheduler_argv(bin_dir: str, state_dir: str) -> list:
    return [os.path.join(bin_dir, "kube-scheduler"), f"--kubeconfig={state_dir}/kubeconfig-scheduler",
            "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0"]


def _etcd_argv(state_dir: str, ports: dict, etcd: str) -> list:
    client = f"http://127.0.0.1:{ports['etcd_client']}"
    peer = f"http://127.0.0.1:{ports['etcd_peer']}"
    return [
        etcd,
        "--name=local",
        f"--data-dir={state_dir}/etcd",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=local={peer}",
    ]


def _prepare(state_dir: str, node: bool = False) -> tuple:
    """Fresh etcd data, logs and audit log; keys and tokens are kept. Returns (tokens, ports)."""
    for stale in ("etcd", "logs", "registry/data"):
        shutil.rmtree(_path(state_dir, stale), ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        os.remove(_path(state_dir, "audit.log"))
    os.makedirs(_path(state_dir, "logs"))
    _make_pki(_path(state_dir, "pki"))
    with open(_path(state_dir, "audit-policy.yaml"), "w", encoding="ascii") as policy:
        policy.write(AUDIT_POLICY)
    ports = {"etcd_client": _free_port(), "etcd_peer": _free_port(), "apiserver": _free_port()}
    if node:
        ports.update(registry=_free_port(), kubelet=_free_port(), kubelet_healthz=_free_port())
    # What kube-apiserver presents to the kubelet (x509 client CA = the cluster's CA).
    localnode.sign(_path(state_dir, "pki"), "kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client",
                   "", "clientAuth")
    return _tokens(state_dir, USERS), ports


def _write_configs(state_dir: str, server: str, tokens: dict) -> ClusterInfo:
    ca = _path(state_dir, "pki", "ca.crt")
    files = {"admin": "kubeconfig", "fixture": "kubeconfig-fixture",
             "system:kube-controller-manager": "kubeconfig-controller-manager",
             "system:kube-scheduler": "kubeconfig-scheduler"}
    for user, name in files.items():
        if user not in tokens:
            continue
        write_kubeconfig(_path(state_dir, name), server, ca, user, tokens[user])
    return ClusterInfo(state_dir=state_dir, server=server, ca=ca, admin_token=tokens["admin"],
                       fixture_token=tokens["fixture"], kubeconfig=_path(state_dir, "kubeconfig"),
                       fixture_kubeconfig=_path(state_dir, "kubeconfig-fixture"),
                       audit_log=_path(state_dir, "audit.log"), pids={}, ports={})


def _default_sa_exists(cluster: ClusterInfo) -> bool:
    url = cluster.server + "/api/v1/namespaces/default/serviceaccounts/default"
    return _get(url, cluster.fixture_token, cluster.ca) == 200


def _start(state_dir: str, node: bool = False) -> ClusterInfo:
    bins = go_bin_dirs()
    bin_dir, etcd = bins["kubernetes"], os.path.join(bins["etcd"], "etcd")
    tokens, ports = _prepare(state_dir, node)
    cluster = _write_configs(state_dir, f"https://127.0.0.1:{ports['apiserver']}", tokens)
    procs = {}
    state = {"procs": procs, "ports": ports, "node_ns": None}
    try:
        procs["etcd"] = _spawn(state_dir, "etcd", _etcd_argv(state_dir, ports, etcd))
        _save(state_dir, cluster, state)
        _wait(state_dir, procs, "etcd", lambda: _get(f"http://127.0.0.1:{ports['etcd_client']}/health") == 200)
        procs["kube-apiserver"] = _spawn(state_dir, "kube-apiserver",
                                         _apiserver_argv(bin_dir, state_dir, ports))
        _save(state_dir, cluster, state)
        _wait(state_dir, procs, "kube-apiserver /readyz", lambda: _healthy(cluster, state))
        procs["kube-controller-manager"] = _spawn(state_dir, "kube-controller-manager",
                                                  _controller_manager_argv(bin_dir, state_dir))
        _save(state_dir, cluster, state)
        version = _get_json(cluster, "/version") or {}
        cluster.version = version.get("gitVersion", "")
        if node:
            _start_node(state_dir, cluster, state, bins)
        # The service account controller answering proves the controller-manager works.
        _wait(state_dir, procs, "the default ServiceAccount", lambda: _default_sa_exists(cluster))
    except BaseException:
        _terminate(procs, state_dir, state.get("node_ns"))
        raise
    return _load(state_dir)


def _start_node(state_dir: str, cluster: ClusterInfo, state: dict, bins: dict) -> None:
    """kube-scheduler, the registry (with its image) and the node, until the node is Ready."""
    procs, ports = state["procs"], state["ports"]
    tokens = _tokens(state_dir, USERS)
    procs["kube-scheduler"] = _spawn(state_dir, "kube-scheduler", _scheduler_argv(bins["kubernetes"], state_dir))
    procs["registry"] = _spawn(state_dir, "registry", localnode.registry_argv(state_dir, ports["registry"]))
    _save(state_dir, cluster, state)
    registry = f"https://127.0.0.1:{ports['registry']}/v2/"
    _wait(state_dir, procs, "the registry", lambda: _get(registry, ca=cluster.ca) == 401)
    localnode.push_app_image(state_dir, ports["registry"])
    cluster.registry = localnode.registry_info(state_dir, ports["registry"])
    localnode.write_files(state_dir, cluster.server, tokens[f"system:node:{localnode.NODE_NAME}"], ports)
    procs["node-ns"] = _spawn(state_dir, "node-ns", localnode.holder_argv(state_dir))
    _save(state_dir, cluster, state)
    _wait(state_dir, procs, "the node's mount namespace",
          lambda: os.path.exists(os.path.join(localnode.node_dir(state_dir), "ns-ready")))
    holder = procs["node-ns"]["pid"]
    state["node_ns"] = localnode.mount_ns(holder)
    env = localnode.node_env(bins)
    procs["containerd"] = _spawn(state_dir, "containerd", localnode.containerd_argv(state_dir, bins, holder), env)
    _save(state_dir, cluster, state)
    sock = os.path.join(localnode.node_dir(state_dir), "containerd.sock")
    _wait(state_dir, procs, "containerd's socket", lambda: os.path.exists(sock))
    localnode.import_images(state_dir, bins)
    procs["kubelet"] = _spawn(state_dir, "kubelet", localnode.kubelet_argv(state_dir, bins, holder), env)
    cluster.node = localnode.NODE_NAME
    _save(state_dir, cluster, state)
    _wait(state_dir, procs, f"node {localnode.NODE_NAME} Ready",
          lambda: localnode.node_ready(lambda path: _get_json(cluster, path)), NODE_READY_TIMEOUT)


def _save(state_dir: str, cluster: ClusterInfo, state: dict) -> None:
    data = dataclasses.asdict(cluster)
    data["pids"] = {name: proc["pid"] for name, proc in state["procs"].items()}
    data["ports"] = state["ports"]
    data["procs"] = state["procs"]
    data["node_ns"] = state.get("node_ns")
    tmp = _path(state_dir, "cluster.json.tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2)
    os.replace(tmp, _path(state_dir, "cluster.json"))


def _load(state_dir: str) -> ClusterInfo | None:
    try:
        with open(_path(state_dir, "cluster.json"), encoding="utf-8") as src:
            data = json.load(src)
    except FileNotFoundError:
        return None
    data.pop("procs")
    data.pop("node_ns", None)
    return ClusterInfo(**data)


def _state(state_dir: str) -> dict:
    with open(_path(state_dir, "cluster.json"), encoding="utf-8") as src:
        data = json.load(src)
    return {"procs": data["procs"], "ports": data["ports"], "node_ns": data.get("node_ns")}


@contextlib.contextmanager
def _locked(state_dir: str):
    # Serialises start/stop of one state dir, e.g. between pytest-xdist workers.
    os.makedirs(state_dir, exist_ok=True)
    with open(_path(state_dir, ".lock"), "w", encoding="ascii") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _stop_unlocked(state_dir: str) -> bool:
    if not os.path.exists(_path(state_dir, "cluster.json")):
        return False
    state = _state(state_dir)
    _terminate(state["procs"], state_dir, state["node_ns"])
    os.remove(_path(state_dir, "cluster.json"))
    return True


def info(state_dir: str | None = None) -> ClusterInfo | None:
    """The recorded cluster of state_dir if all its processes run and it is ready, else None."""
    state_dir = canonical_dir(state_dir)
    cluster = _load(state_dir)
    if cluster is None or not _healthy(cluster, _state(state_dir)):
        return None
    return cluster


def ensure_running(state_dir: str | None = None, node: bool = False) -> ClusterInfo:
    """Start the cluster of state_dir unless it already runs and answers /readyz.

    node=True: with its node and registry (a running control plane without a node is
    restarted as one). node=False: a control plane is enough; a running cluster with a
    node is returned as it is.
    """
    state_dir = canonical_dir(state_dir)
    with _locked(state_dir):
        cluster = info(state_dir)
        if cluster is not None and (cluster.node or not node):
            return cluster
        _stop_unlocked(state_dir)
        return _start(state_dir, node)


def stop(state_dir: str | None = None) -> bool:
    """Stop every process recorded for state_dir. Returns whether there was anything to stop."""
    state_dir = canonical_dir(state_dir)
    with _locked(state_dir):
        return _stop_unlocked(state_dir)


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("command", choices=("start", "stop", "status"))
    parser.add_argument("--dir", default=None, help="state directory (default $IBMREG_CLUSTER_DIR or <repo>/.cluster)")
    parser.add_argument("--node", action="store_true",
                        help="start: with a worker node and a private registry (make cluster)")
    parser.add_argument("--all", action="store_true",
                        help="stop: also every <repo>/.cluster-* cluster that tests started")
    args = parser.parse_args(argv)
    state_dir = canonical_dir(args.dir)
    if args.command == "start":
        started = time.monotonic()
        cluster = ensure_running(state_dir, node=args.node)
        extra = f", node {cluster.node} Ready, registry {cluster.registry['host']}" if cluster.node else ""
        print(f"cluster {cluster.version + ' ' if cluster.version else ''}ready at {cluster.server} ({time.monotonic() - started:.1f}s{extra}); "
              f"KUBECONFIG={cluster.kubeconfig}")
        return 0
    if args.command == "stop":
        dirs = [state_dir]
        if args.all:
            # Not the alias .cluster-node (a symlink): it is the default cluster.
            dirs += sorted(os.path.join(REPO, d) for d in os.listdir(REPO)
                           if d.startswith(".cluster-") and os.path.isdir(os.path.join(REPO, d))
                           and not os.path.islink(os.path.join(REPO, d)))
        for one in dirs:
            print(f"{one}: " + ("stopped" if stop(one) else "not running"))
        return 0
    cluster = info(state_dir)
    print(json.dumps({"running": cluster is not None, **(dataclasses.asdict(cluster) if cluster else {})}, indent=2))
    return 0 if cluster else 1


if __name__ == "__main__":
    sys.exit(main())
