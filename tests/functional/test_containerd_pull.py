"""Real containerd pulls through the hosts.toml files that the containerd_hosts role wrote.

One TLS registry with htpasswd (and a second one that requires client certificates) on
loopback holds a hand-made one-layer image; containerd runs with its state in a temp
directory; `ctr images pull --hosts-dir` must succeed through each file the role wrote
(a mirror for an upstream name, a private CA given as a path relative to the registry
directory, skip_verify, `_default`, client certificates, kubespray's variable shape) and
must fail once the files are gone. Every file is parsed back with tomllib, because
containerd ignores a malformed file without a word.

The cluster-mode test renders the same content into a ConfigMap and DaemonSet on the local
cluster, where the DaemonSet runs on the node (the role waits for its rollout; its init
container writes the files into the node's default config_path, a scratch directory of
the node that its containerd does not read), then runs the DaemonSet's own init container
command here against the ConfigMap's data and pulls through the result with this lab's
containerd. test_containerd_node.py pulls through the DaemonSet's files on the node.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import tomllib

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "containerd"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cluster"))

import containerd_lab as lab  # noqa: E402  pylint: disable=wrong-import-position
import localnode  # noqa: E402  pylint: disable=wrong-import-position
from playbook import Runner  # noqa: E402  pylint: disable=wrong-import-position

USER, PASSWORD = "probe", "pr0be-" + secrets.token_hex(4)
HEADER_VALUE = "header-" + secrets.token_hex(8)  # must never appear in any output
IMAGE = "probe/hello:v1"
ROLE = "ibmcloud.registry.containerd_hosts"


def _skip_reason():
    missing = lab.missing_binaries()
    if missing:
        return "missing binaries: " + ", ".join(missing)
    if os.geteuid() != 0:
        return "containerd needs root"
    return None


# Marked `cluster` like every functional test (`make functional` selects them by it); only
# the cluster-mode test below uses the control plane.
pytestmark = [pytest.mark.cluster,
              pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")]


class Lab:
    """Everything one test module needs, under one short temp dir (socket paths are short)."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="ctd-", dir="/tmp")
        self.pki = lab.make_pki(os.path.join(self.root, "pki"))
        layout = os.path.join(self.root, "image")
        lab.write_oci_image(layout)
        self.started = []
        self.registry = self._start(lab.Registry(os.path.join(self.root, "reg"), self.pki, USER, PASSWORD))
        self.mtls = self._start(lab.Registry(os.path.join(self.root, "mtls"), self.pki, USER, PASSWORD,
                                             require_client_cert=True))
        for registry in (self.registry, self.mtls):
            registry.push(layout, "v1", IMAGE)
        self.containerd = self._start(lab.Containerd(os.path.join(self.root, "containerd")))
        self._namespace = 0

    def _start(self, process):
        self.started.append(process)
        return process

    def pull(self, ref, hosts_dir):
        """Pull in a fresh containerd namespace, so nothing is reused from an earlier pull."""
        self._namespace += 1
        return self.containerd.pull(ref, hosts_dir, user="%s:%s" % (USER, PASSWORD),
                                    namespace="pull%d" % self._namespace)

    def close(self):
        for process in reversed(self.started):
            process.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def env():
    environment = Lab()
    yield environment
    environment.close()


def declarations(env):
    """(registries, kubespray mirrors, {case: image reference}) for one hosts directory."""
    direct, mtls, ca = env.registry.host, env.mtls.host, env.pki["ca"]
    cert, key = env.pki["client"]
    registries = [
        {"registry": "upstream.invalid", "server": "https://upstream.invalid",
         "hosts": [{"url": "https://" + direct, "capabilities": ["pull", "resolve"], "ca": [ca],
                    "headers": {"X-Probe": HEADER_VALUE}}]},
        # ca.pem beside hosts.toml, not *.crt: without hosts.toml containerd would load *.crt
        {"registry": direct, "server": "https://" + direct, "server_settings": {"ca": ["ca.pem"]}},
        {"registry": "localhost:%d" % env.registry.port, "server": "https://localhost:%d" % env.registry.port,
         "server_settings": {"skip_verify": True}},
        {"registry": "_default", "hosts": [{"url": "https://" + direct, "capabilities": ["pull", "resolve"],
                                            "ca": [ca]}]},
        {"registry": mtls, "server": "https://" + mtls,
         "server_settings": {"ca": [ca], "client": [{"cert": cert, "key": key}]}},
    ]
    kubespray = [{"prefix": "kubespray.invalid",
                  "mirrors": [{"host": "https://" + direct, "capabilities": ["pull", "resolve"], "ca": ca}]}]
    refs = {
        "mirror": "upstream.invalid/" + IMAGE,
        "private CA": "%s/%s" % (direct, IMAGE),
        "skip_verify": "localhost:%d/%s" % (env.registry.port, IMAGE),
        "_default": "anything.invalid/" + IMAGE,
        "client certificate": "%s/%s" % (mtls, IMAGE),
        "kubespray shape": "kubespray.invalid/" + IMAGE,
    }
    return registries, kubespray, refs


def node_play(role_vars, module_defaults=None):
    return [{"name": "containerd hosts on this node", "hosts": "localhost", "connection": "local",
             "gather_facts": False, "module_defaults": module_defaults or {},
             "roles": [{"role": ROLE, "vars": role_vars}]}]


def hosts_files(hosts_dir):
    found = {}
    for name in sorted(os.listdir(hosts_dir)):
        path = os.path.join(hosts_dir, name, "hosts.toml")
        if os.path.isfile(path):
            found[name] = path
    return found


def changed_count(result):
    return sum(host.get("changed", 0) for host in result.stats.values())


def test_role_writes_hosts_toml_that_containerd_pulls_through(env, tmp_path):
    hosts_dir = tmp_path / "certs.d"
    registries, kubespray, refs = declarations(env)
    (hosts_dir / env.registry.host).mkdir(parents=True)
    shutil.copy(env.pki["ca"], hosts_dir / env.registry.host / "ca.pem")
    config_toml = tmp_path / "config.toml"
    config_toml.write_text('version = 2\n[plugins."io.containerd.grpc.v1.cri".cni]\n  bin_dir = "/usr/lib/cni"\n')
    role_vars = {
        "containerd_hosts_registries": registries,
        "containerd_hosts_registries_mirrors": kubespray,
        "containerd_hosts_config_path": str(hosts_dir),
        "containerd_hosts_containerd_config": str(config_toml),
        "containerd_hosts_containerd_config_check": "set",
        "containerd_hosts_restart_containerd": False,  # no systemd here; the handler is skipped
        "containerd_hosts_prune": True,
    }
    runner = Runner(kubeconfig="", workdir=str(tmp_path))
    play = node_play(role_vars)

    # Check mode: reports changes, writes nothing.
    checked = runner.run([], plays=play, check=True)
    assert checked.rc == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    assert changed_count(checked) > 0
    assert hosts_files(str(hosts_dir)) == {}
    assert "config_path" not in config_toml.read_text()

    # The real run, with --diff: header values are redacted everywhere in the output.
    first = runner.run([], plays=play, diff=True, raw=True, args=("-v",))
    assert first.rc == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert HEADER_VALUE not in first.stdout + first.stderr
    assert "X-Probe" in first.stdout and "********" in first.stdout
    assert '+[host."https://%s"]' % env.registry.host in first.stdout

    # Every file parses back; the one with a header is 0600, the others 0644.
    files = hosts_files(str(hosts_dir))
    assert sorted(files) == sorted([r["registry"] for r in registries] + ["kubespray.invalid"])
    for name, path in files.items():
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
        assert "host" in document, name
        expected_mode = 0o600 if name == "upstream.invalid" else 0o644
        assert os.stat(path).st_mode & 0o777 == expected_mode, name
    with open(files["upstream.invalid"], "rb") as handle:
        mirror = tomllib.load(handle)
    assert mirror["host"]["https://" + env.registry.host]["header"] == {"X-Probe": HEADER_VALUE}
    assert str(hosts_dir) in tomllib.loads(config_toml.read_text())["plugins"][
        "io.containerd.grpc.v1.cri"]["registry"]["config_path"]

    # Second run: nothing to do.
    second = runner.run([], plays=play)
    assert second.rc == 0, second.stdout[-3000:]
    assert changed_count(second) == 0, second.stdout[-3000:]

    # containerd pulls through each file...
    for case, ref in refs.items():
        pulled = env.pull(ref, str(hosts_dir))
        assert pulled.returncode == 0, "%s: %s%s" % (case, pulled.stdout, pulled.stderr)
    # ...and not without them: removed by the role (state: absent), every pull fails.
    absent = [dict(registry=r["registry"], state="absent") for r in registries]
    absent += [{"registry": "kubespray.invalid", "state": "absent"}]
    removed = runner.run([], plays=node_play(dict(role_vars, containerd_hosts_registries=absent,
                                                  containerd_hosts_registries_mirrors=[])))
    assert removed.rc == 0, removed.stdout[-3000:]
    assert hosts_files(str(hosts_dir)) == {}
    assert sorted(os.listdir(hosts_dir)) == [env.registry.host]  # ca.pem stays, by design
    for case, ref in refs.items():
        pulled = env.pull(ref, str(hosts_dir))
        assert pulled.returncode != 0, "%s pulled without its hosts.toml" % case


def test_prune_removes_only_managed_directories(env, tmp_path):
    hosts_dir = tmp_path / "certs.d"
    by_hand = hosts_dir / "by-hand.example.com"
    by_hand.mkdir(parents=True)
    (by_hand / "hosts.toml").write_text('server = "https://by-hand.example.com"\n[host]\n')
    registries, _kubespray, _refs = declarations(env)
    base = {"containerd_hosts_config_path": str(hosts_dir), "containerd_hosts_containerd_config_check": "none",
            "containerd_hosts_prune": True}
    runner = Runner(kubeconfig="", workdir=str(tmp_path))
    keep = [registries[2], registries[3]]  # skip_verify and _default
    assert runner.run([], plays=node_play(dict(base, containerd_hosts_registries=keep + [registries[0]]))).rc == 0
    pruned = runner.run([], plays=node_play(dict(base, containerd_hosts_registries=keep)))
    assert pruned.rc == 0, pruned.stdout[-3000:]
    assert sorted(os.listdir(hosts_dir)) == sorted(["by-hand.example.com", "localhost:%d" % env.registry.port,
                                                    "_default"])
    assert changed_count(runner.run([], plays=node_play(dict(base, containerd_hosts_registries=keep)))) == 0


def _run_init_container(daemonset, data, hosts_dir, workdir):
    """Run the DaemonSet's init container command here, with its volumes mapped to dirs."""
    init = daemonset["spec"]["template"]["spec"]["initContainers"][0]
    source = os.path.join(workdir, "config-volume")
    os.makedirs(source, exist_ok=True)
    for key, text in data.items():
        with open(os.path.join(source, key), "w", encoding="utf-8") as handle:
            handle.write(text)
    env = dict(os.environ, **{e["name"]: e["value"] for e in init["env"]})
    env.update(CONTAINERD_HOSTS_SOURCE=source, CONTAINERD_HOSTS_TARGET=hosts_dir)
    return subprocess.run(init["command"], env=env, capture_output=True, text=True, check=True)


def test_cluster_mode_configmap_daemonset_and_a_pull_through_its_output(env, cluster, tmp_path):
    from kubernetes import client, config  # pylint: disable=import-outside-toplevel

    name = "ctd-hosts-" + secrets.token_hex(3)
    registries, kubespray, refs = declarations(env)
    registries = [r for r in registries if r["registry"] in ("upstream.invalid", "_default")]
    mirror_host = {k: v for k, v in registries[0]["hosts"][0].items() if k != "headers"}
    registries[0] = dict(registries[0], hosts=[mirror_host])
    # The role passes no connection option: the play's module_defaults name the cluster.
    connection = {"group/ibmcloud.registry.kube": {"kubeconfig": cluster.kubeconfig}}
    # Images the node has (imported at its start): the pod can run there without a pull.
    role_vars = {"containerd_hosts_mode": "cluster",
                 "containerd_hosts_cluster_name": name, "containerd_hosts_registries": registries,
                 "containerd_hosts_registries_mirrors": kubespray, "containerd_hosts_prune": True,
                 "containerd_hosts_init_image": localnode.LOCAL_APP_IMAGE,
                 "containerd_hosts_pause_image": localnode.PAUSE_IMAGE,
                 "containerd_hosts_rollout_timeout": 120}
    runner = Runner(cluster.kubeconfig, workdir=str(tmp_path))
    api = config.new_client_from_config(config_file=cluster.fixture_kubeconfig)
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    on_node = os.path.join(localnode.node_dir(cluster.state_dir), "etc-containerd", "certs.d")

    def node_pod():
        pods = core.list_namespaced_pod("kube-system", label_selector="app.kubernetes.io/name=" + name).items
        (pod,) = [p for p in pods if p.metadata.deletion_timestamp is None]
        return pod

    try:
        first = runner.run([], plays=node_play(role_vars, module_defaults=connection))
        assert first.rc == 0, first.stdout[-3000:] + first.stderr[-3000:]
        # The role returned once the DaemonSet's pod ran on the node, its files written there.
        pod = node_pod()
        assert pod.spec.node_name == cluster.node and pod.status.phase == "Running"
        assert {"_default", "kubespray.invalid", "upstream.invalid"} <= set(os.listdir(on_node))
        configmap = core.read_namespaced_config_map(name, "kube-system")
        daemonset = api.sanitize_for_serialization(apps.read_namespaced_daemon_set(name, "kube-system"))
        assert sorted(configmap.data) == ["_default.hosts.toml", "kubespray.invalid.hosts.toml", "manifest",
                                          "upstream.invalid.hosts.toml"]
        for key, text in configmap.data.items():
            if key != "manifest":
                tomllib.loads(text)
        checksum = daemonset["spec"]["template"]["metadata"]["annotations"]["ibmcloud.registry/hosts-checksum"]
        assert checksum.startswith("scrypt:")  # the salted fingerprint: header values are not checkable against it
        assert daemonset["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "ibmcloud.registry"
        volumes = {v["name"]: v for v in daemonset["spec"]["template"]["spec"]["volumes"]}
        assert volumes["hosts-toml"]["configMap"]["name"] == name
        assert volumes["containerd-config-path"]["hostPath"]["path"] == "/etc/containerd/certs.d"

        second = runner.run([], plays=node_play(role_vars, module_defaults=connection))
        assert second.rc == 0 and changed_count(second) == 0, second.stdout[-3000:]

        # What the init container would write on a node pulls through real containerd.
        hosts_dir = str(tmp_path / "node-certs.d")
        _run_init_container(daemonset, configmap.data, hosts_dir, str(tmp_path))
        for case in ("mirror", "_default", "kubespray shape"):
            pulled = env.pull(refs[case], hosts_dir)
            assert pulled.returncode == 0, "%s: %s" % (case, pulled.stderr)

        # A content change rolls the DaemonSet (new checksum) and drops the old key.
        changed_vars = dict(role_vars, containerd_hosts_registries_mirrors=[])
        third = runner.run([], plays=node_play(changed_vars, module_defaults=connection))
        assert third.rc == 0 and changed_count(third) > 0, third.stdout[-3000:]
        configmap = core.read_namespaced_config_map(name, "kube-system")
        daemonset = api.sanitize_for_serialization(apps.read_namespaced_daemon_set(name, "kube-system"))
        assert "kubespray.invalid.hosts.toml" not in configmap.data
        assert daemonset["spec"]["template"]["metadata"]["annotations"][
            "ibmcloud.registry/hosts-checksum"] != checksum
        _run_init_container(daemonset, configmap.data, hosts_dir, str(tmp_path / "second"))
        assert sorted(os.listdir(hosts_dir)) == ["_default", "upstream.invalid"]  # pruned here
        # ... and on the node, by the new pod the role waited for.
        rolled = node_pod()
        assert rolled.metadata.uid != pod.metadata.uid and rolled.status.phase == "Running"
        assert sorted(os.listdir(on_node)) == ["_default", "upstream.invalid"]
        assert changed_count(runner.run([], plays=node_play(changed_vars, module_defaults=connection))) == 0
    finally:
        removed = runner.run([], plays=node_play(dict(role_vars, containerd_hosts_cluster_state="absent"),
                                                 module_defaults=connection))
        api.close()
    assert removed.rc == 0, removed.stdout[-3000:]
