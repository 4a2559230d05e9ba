"""One real worker node and a private registry for a local cluster (localcluster.py --node).

The node is containerd 2.x with its CRI plugin, runc (Debian) and kubelet, in a private
mount namespace of their own (facts: ../shared/reference/real-node.md):
- a holder process (``unshare -m --propagation private``) bind-mounts the node's own /run,
  /var, /etc/resolv.conf (nameserver 127.0.0.1), /etc/hosts (test names -> 127.0.0.1),
  /etc/containerd (a scratch directory: what DaemonSets write to the default config_path
  stays on the node) and six /proc/sys files holding the values kubelet wants, then
  sleeps; containerd and kubelet join its namespace with nsenter, so every mount they
  make vanishes with them;
- pods use hostNetwork; CNI is a loopback-only conflist (the node is Ready with it);
- kubelet listens on 127.0.0.1 only, the node is called ``localhost`` and the API server
  prefers the Hostname address, so nothing dials the VM's eth0 address.

The registry is Debian's docker-registry on 127.0.0.1 with TLS from the cluster's CA and
bcrypt htpasswd users; it serves a busybox-static image built here, and a pause image
built from node/pause.c is imported into containerd as the sandbox image, and the busybox
image as LOCAL_APP_IMAGE.

Stdlib only. Teardown (stop) kills kubelet, every process in the node's cgroups and in its
mount namespace, removes the cgroups, and checks that nothing of the node stays mounted.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import secrets
import shutil
import signal
import subprocess
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_NAME = "localhost"
REGISTRY_NAME = "registry.ibmreg.test"
# Names the node resolves to 127.0.0.1: its own name, the registry, and the real registry
# names the collection writes secrets for, so that even a mistaken pull stays on loopback.
LOOPBACK_NAMES = [NODE_NAME, REGISTRY_NAME, "icr.io", "cp.icr.io", "us.icr.io", "de.icr.io",
                  "private.icr.io", "registry.bluemix.net", "image-registry.openshift-image-registry.svc"]
SYSCTLS = {"vm/overcommit_memory": "1", "vm/panic_on_oom": "0", "kernel/panic": "10",
           "kernel/panic_on_oops": "1", "kernel/keys/root_maxkeys": "1000000",
           "kernel/keys/root_maxbytes": "25000000"}
PAUSE_IMAGE = "localhost/ibmreg/pause:local"
APP_REPO = "ibmreg/busybox"
APP_TAG = "1"
# The busybox image, also imported into the node's containerd at start (like the pause
# image): DaemonSets that are not about pulling (containerd_hosts' init container) run it
# with imagePullPolicy IfNotPresent and need no pull secret in their namespace. It is its
# own image (a label in its config), not the registry's: kubelet (KubeletEnsureSecretPulledImages)
# re-verifies an image ID once a pod pulled it with credentials, so a pod without them
# would have to pull the shared image again, from a registry that is not there.
LOCAL_APP_IMAGE = f"localhost/{APP_REPO}:{APP_TAG}"
# containerd_hosts' default config_path. The node's containerd reads its own certs.d (its
# config_path), so a DaemonSet that keeps the default writes into a scratch directory of
# the node, bind-mounted there in the node's mount namespace: never into the host's /etc.
DEFAULT_CONFIG_PATH = "/etc/containerd/certs.d"
CGROUP_FS = "/sys/fs/cgroup"


def cache_root() -> str:
    return os.environ.get("IBMREG_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ibmcloud-registry")


def _run(*argv, check: bool = True, **kw):
    kw.setdefault("capture_output", True)
    try:
        return subprocess.run(list(argv), check=check, **kw)
    except subprocess.CalledProcessError as err:
        raise RuntimeError(f"{argv[0]} failed ({err.returncode}): {err.stderr!r}") from err


# --- images ------------------------------------------------------------------------------

def _tar_layer(files: dict) -> tuple:
    """A gzip'd tar layer from {path: (mode, bytes) | ('link', target) | ('dir', None)}."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(files):
            kind, data = files[path]
            info = tarfile.TarInfo(path)
            info.mtime = 0
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind == "link":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, data, 0o777
                tar.addfile(info)
            else:
                info.mode, info.size = kind, len(data)
                tar.addfile(info, io.BytesIO(data))
    diff = raw.getvalue()
    return diff, gzip.compress(diff, mtime=0)


def _oci_layout(out: str, files: dict, config: dict, tag: str) -> None:
    """A one-layer OCI image layout in out (index.json, oci-layout, blobs/sha256)."""
    blobs = os.path.join(out, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)

    def blob(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, digest), "wb") as handle:
            handle.write(data)
        return "sha256:" + digest

    diff, layer = _tar_layer(files)
    image_config = {"architecture": "amd64", "os": "linux", "config": config,
                    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(diff).hexdigest()]}}
    config_bytes = json.dumps(image_config).encode()
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": blob(config_bytes), "size": len(config_bytes)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": blob(layer), "size": len(layer)}]}
    manifest_bytes = json.dumps(manifest).encode()
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": blob(manifest_bytes),
        "size": len(manifest_bytes), "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    with open(os.path.join(out, "index.json"), "w", encoding="ascii") as handle:
        json.dump(index, handle)
    with open(os.path.join(out, "oci-layout"), "w", encoding="ascii") as handle:
        json.dump({"imageLayoutVersion": "1.0.0"}, handle)


def pause_archive() -> str:
    """docker-archive of the pause image (node/pause.c, gcc -static), cached by source hash."""
    with open(os.path.join(HERE, "node", "pause.c"), "rb") as src:
        key = hashlib.sha256(src.read()).hexdigest()[:16]
    out = os.path.join(cache_root(), "images", "pause-" + key)
    archive = os.path.join(out, "pause.tar")
    if os.path.exists(archive):
        return archive
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    _run("gcc", "-static", "-Os", "-s", "-o", os.path.join(tmp, "pause"), os.path.join(HERE, "node", "pause.c"))
    with open(os.path.join(tmp, "pause"), "rb") as binary:
        files = {"pause": (0o755, binary.read())}
    _oci_layout(os.path.join(tmp, "oci"), files, {"Entrypoint": ["/pause"]}, "local")
    _run("skopeo", "copy", "--quiet", f"oci:{tmp}/oci:local", f"docker-archive:{tmp}/pause.tar:{PAUSE_IMAGE}")
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    return archive


def app_archive() -> str:
    """docker-archive of the node-local busybox image as LOCAL_APP_IMAGE, beside its layout."""
    layout = app_layout(node_local=True)
    archive = layout + ".tar"
    if not os.path.exists(archive):
        _run("skopeo", "copy", "--quiet", f"oci:{layout}:{APP_TAG}", f"docker-archive:{archive}.tmp:{LOCAL_APP_IMAGE}")
        os.replace(archive + ".tmp", archive)
    return archive


def app_layout(node_local: bool = False) -> str:
    """OCI layout of a small image: Debian's busybox-static with one symlink per applet.

    node_local: the variant imported into the node (same files, a label: another image ID).
    """
    busybox = "/bin/busybox"
    with open(busybox, "rb") as binary:
        data = binary.read()
    key = hashlib.sha256(data).hexdigest()[:16]
    out = os.path.join(cache_root(), "images", ("busybox-node-local-" if node_local else "busybox-") + key)
    if os.path.exists(os.path.join(out, "index.json")):
        return out
    applets = _run(busybox, "--list", text=True).stdout.split()
    files = {"bin": ("dir", None), "tmp": ("dir", None), "bin/busybox": (0o755, data)}
    for applet in applets:
        if applet != "busybox":
            files["bin/" + applet] = ("link", "busybox")
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    config = {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]}
    if node_local:
        config["Labels"] = {"test.ibmcloud.registry/image": "node-local"}
    _oci_layout(tmp, files, config, APP_TAG)
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    return out


# --- PKI and registry ----------------------------------------------------------------------

def _openssl(*args: str) -> None:
    _run("openssl", *args)


def sign(pki: str, name: str, subject: str, sans: str, usage: str) -> None:
    """A key and certificate <name>.key/.crt in pki, signed by the cluster's CA (once)."""
    def p(name_: str) -> str:
        return os.path.join(pki, name_)

    if os.path.exists(p(name + ".crt")):
        return
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
             "-keyout", p(name + ".key"), "-out", p(name + ".csr"))
    with open(p(name + ".ext"), "w", encoding="ascii") as ext:
        ext.write(f"basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                  f"extendedKeyUsage={usage}\nauthorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
                  + (f"subjectAltName={sans}\n" if sans else ""))
    _openssl("x509", "-req", "-in", p(name + ".csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
             "-CAcreateserial", "-days", "3650", "-extfile", p(name + ".ext"), "-out", p(name + ".crt"))


def registry_users(state_dir: str) -> dict:
    """{user: password} of the registry, kept across restarts of the same state dir."""
    path = os.path.join(state_dir, "registry", "users.json")
    if os.path.exists(path):
        with open(path, encoding="ascii") as src:
            return json.load(src)
    # `cp` is the entitled registry's username: its password stands in for an entitlement key.
    users = {"puller": secrets.token_hex(16), "pusher": secrets.token_hex(16), "cp": secrets.token_hex(16)}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="ascii") as out:
        json.dump(users, out)
    os.chmod(path, 0o600)
    return users


def registry_argv(state_dir: str, port: int) -> list:
    """Writes the registry's certificate, htpasswd and config; returns its command line."""
    pki = os.path.join(state_dir, "pki")
    reg = os.path.join(state_dir, "registry")
    os.makedirs(os.path.join(reg, "data"), exist_ok=True)
    sign(pki, "registry", "/CN=" + REGISTRY_NAME, f"DNS:{REGISTRY_NAME},IP:127.0.0.1", "serverAuth")
    htpasswd = os.path.join(reg, "htpasswd")
    with open(htpasswd, "w", encoding="ascii") as out:
        for user, password in registry_users(state_dir).items():
            out.write(_run("htpasswd", "-nbB", user, password, text=True).stdout.strip() + "\n")
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": False}},
        "storage": {"filesystem": {"rootdirectory": os.path.join(reg, "data")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16),
                 "tls": {"certificate": os.path.join(pki, "registry.crt"), "key": os.path.join(pki, "registry.key")}},
        "auth": {"htpasswd": {"realm": "ibmreg-local", "path": htpasswd}},
    }
    path = os.path.join(reg, "config.yml")
    with open(path, "w", encoding="ascii") as out:
        json.dump(config, out, indent=2)  # JSON is YAML
    return ["docker-registry", "serve", path]


def push_app_image(state_dir: str, port: int) -> str:
    """Pushes the busybox image as `pusher`; returns the reference pods use."""
    certs = os.path.join(state_dir, "registry", "client-certs")
    os.makedirs(certs, exist_ok=True)
    # Only ca.crt: a key beside it makes skopeo look for a client certificate.
    shutil.copy(os.path.join(state_dir, "pki", "ca.crt"), os.path.join(certs, "ca.crt"))
    password = registry_users(state_dir)["pusher"]
    _run("skopeo", "copy", "--quiet", "--dest-cert-dir", certs, "--dest-creds", f"pusher:{password}",
         f"oci:{app_layout()}:{APP_TAG}", f"docker://127.0.0.1:{port}/{APP_REPO}:{APP_TAG}")
    return f"{REGISTRY_NAME}:{port}/{APP_REPO}:{APP_TAG}"


def registry_info(state_dir: str, port: int) -> dict:
    users = registry_users(state_dir)
    host = f"{REGISTRY_NAME}:{port}"
    return {"host": host, "address": f"127.0.0.1:{port}", "ca": os.path.join(state_dir, "pki", "ca.crt"),
            "username": "puller", "password": users["puller"],
            "entitlement_key": users["cp"],
            "image": f"{host}/{APP_REPO}:{APP_TAG}",
            # The same image by the entitled registry's name: the node's hosts.toml for
            # cp.icr.io sends that pull to the local registry (never to the real one).
            "entitled_image": f"cp.icr.io/{APP_REPO}:{APP_TAG}"}


# --- the node's files ------------------------------------------------------------------------

def node_dir(state_dir: str) -> str:
    return os.path.join(state_dir, "node")


def cgroup_root(state_dir: str) -> str:
    """kubelet's cgroupRoot: one per state dir, so that two clusters never share one."""
    return "/ibmreg-" + hashlib.sha256(os.path.abspath(state_dir).encode()).hexdigest()[:10]


def _controllers() -> list:
    return sorted(d for d in os.listdir(CGROUP_FS)
                  if d != "unified" and os.path.isdir(os.path.join(CGROUP_FS, d))
                  and not os.path.islink(os.path.join(CGROUP_FS, d)))


def _make_cgroups(root: str) -> None:
    for controller in _controllers():
        path = CGROUP_FS + "/" + controller + root
        os.makedirs(path, exist_ok=True)
        if controller.startswith("cpuset"):
            for name in ("cpuset.cpus", "cpuset.mems"):
                with open(os.path.join(CGROUP_FS, controller, name), encoding="ascii") as parent:
                    value = parent.read().strip()
                with open(os.path.join(path, name), "w", encoding="ascii") as own:
                    own.write(value)


def _cgroup_pids(root: str) -> set:
    pids = set()
    for controller in _controllers():
        base = CGROUP_FS + "/" + controller + root
        for dirpath, _dirs, files in os.walk(base):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError), open(os.path.join(dirpath, "cgroup.procs"), encoding="ascii") as f:
                    pids.update(int(line) for line in f if line.strip())
    return pids


def _remove_cgroups(root: str) -> list:
    """rmdir the cgroup trees bottom-up; returns what could not be removed."""
    left = []
    for controller in _controllers():
        base = CGROUP_FS + "/" + controller + root
        if not os.path.isdir(base):
            continue
        for dirpath, _dirs, _files in sorted(os.walk(base), key=lambda w: -w[0].count("/")):
            for _attempt in range(50):
                try:
                    os.rmdir(dirpath)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                left.append(dirpath)
    return left


def write_files(state_dir: str, server: str, node_token: str, ports: dict) -> None:
    """Everything the node reads, written before any of its processes starts."""
    n = node_dir(state_dir)
    shutil.rmtree(n, ignore_errors=True)
    for sub in ("run", "var/lib/kubelet", "var/log", "etc", "etc-containerd/certs.d", "sysctl", "cni", "certs.d",
                "containerd", "runc"):
        os.makedirs(os.path.join(n, sub), exist_ok=True)
    with open(os.path.join(n, "etc", "resolv.conf"), "w", encoding="ascii") as out:
        out.write("nameserver 127.0.0.1\n")
    with open(os.path.join(n, "etc", "hosts"), "w", encoding="ascii") as out:
        out.write("127.0.0.1 " + " ".join(LOOPBACK_NAMES) + "\n::1 localhost ip6-localhost ip6-loopback\n")
    for name, value in SYSCTLS.items():
        with open(os.path.join(n, "sysctl", name.replace("/", "_")), "w", encoding="ascii") as out:
            out.write(value + "\n")
    # Loopback only: the node becomes Ready, pods use hostNetwork. Present before containerd.
    with open(os.path.join(n, "cni", "10-loopback.conflist"), "w", encoding="ascii") as out:
        json.dump({"cniVersion": "1.0.0", "name": "ibmreg-loopback", "plugins": [{"type": "loopback"}]}, out)
    ca = os.path.join(state_dir, "pki", "ca.crt")
    reg = f"{REGISTRY_NAME}:{ports['registry']}"
    certs = os.path.join(n, "certs.d")
    os.makedirs(os.path.join(certs, reg))
    with open(os.path.join(certs, reg, "hosts.toml"), "w", encoding="ascii") as out:
        out.write(f'server = "https://{reg}"\n\n[host."https://{reg}"]\n  ca = "{ca}"\n'
                  '  capabilities = ["pull", "resolve"]\n')
    # The entitled registry's name, mirrored to the local registry only ("server" too, so
    # that no fallback ever names the real host).
    os.makedirs(os.path.join(certs, "cp.icr.io"))
    with open(os.path.join(certs, "cp.icr.io", "hosts.toml"), "w", encoding="ascii") as out:
        out.write(f'server = "https://{reg}"\n\n[host."https://{reg}"]\n  ca = "{ca}"\n'
                  '  capabilities = ["pull", "resolve"]\n')
    sock = os.path.join(n, "containerd.sock")
    runtime = "plugins.'io.containerd.cri.v1.runtime'"
    images = "plugins.'io.containerd.cri.v1.images'"
    with open(os.path.join(n, "containerd.toml"), "w", encoding="ascii") as out:
        out.write(f"""\
version = 3
root = "{n}/containerd/root"
state = "{n}/containerd/state"

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{n}/containerd/opt"

[{images}]
  snapshotter = "overlayfs"

[{images}.pinned_images]
  sandbox = "{PAUSE_IMAGE}"

[{images}.registry]
  config_path = "{certs}"

[{runtime}]
  disable_apparmor = true
  restrict_oom_score_adj = true

[{runtime}.containerd]
  default_runtime_name = "runc"

[{runtime}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{runtime}.containerd.runtimes.runc.options]
  BinaryName = "/usr/sbin/runc"
  Root = "{n}/runc"
  SystemdCgroup = false

[{runtime}.cni]
  bin_dirs = ["/usr/lib/cni"]
  conf_dir = "{n}/cni"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
""")
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": ca}}],
        "users": [{"name": "node", "user": {"token": node_token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "node"}}],
        "current-context": "local"}
    with open(os.path.join(n, "kubeconfig"), "w", encoding="ascii") as out:
        json.dump(kubeconfig, out)
    os.chmod(os.path.join(n, "kubeconfig"), 0o600)
    kubelet_config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": "127.0.0.1", "port": ports["kubelet"],
        "healthzBindAddress": "127.0.0.1", "healthzPort": ports["kubelet_healthz"],
        "readOnlyPort": 0,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                           "x509": {"clientCAFile": ca}},
        "authorization": {"mode": "AlwaysAllow"},
        "cgroupDriver": "cgroupfs", "cgroupRoot": cgroup_root(state_dir), "cgroupsPerQOS": True,
        "failCgroupV1": False, "failSwapOn": False, "makeIPTablesUtilChains": False,
        "protectKernelDefaults": True, "oomScoreAdj": 0,
        "resolvConf": "/etc/resolv.conf",
        "containerRuntimeEndpoint": "unix://" + sock,
        "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "imageGCHighThresholdPercent": 99, "imageGCLowThresholdPercent": 98,
        "serializeImagePulls": False,
        "registerNode": True,
    }
    with open(os.path.join(n, "kubelet.yaml"), "w", encoding="ascii") as out:
        json.dump(kubelet_config, out, indent=2)
    script = ["set -eu"]
    script += [f"mount --bind {n}/run /run", f"mount --bind {n}/var /var",
               f"mount --bind {n}/etc/resolv.conf /etc/resolv.conf", f"mount --bind {n}/etc/hosts /etc/hosts"]
    script += [f"mount --bind {n}/sysctl/{k.replace('/', '_')} /proc/sys/{k}" for k in SYSCTLS]
    # Debian's containerd package makes /etc/containerd; only its mount point is needed.
    script += ["mkdir -p /etc/containerd", f"mount --bind {n}/etc-containerd /etc/containerd"]
    script += [f"touch {n}/ns-ready", "exec sleep infinity"]
    with open(os.path.join(n, "ns.sh"), "w", encoding="ascii") as out:
        out.write("\n".join(script) + "\n")
    _make_cgroups(cgroup_root(state_dir))


def holder_argv(state_dir: str) -> list:
    return ["unshare", "-m", "--propagation", "private", "sh", os.path.join(node_dir(state_dir), "ns.sh")]


def mount_ns(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/mnt")


def _in_ns(holder: int, argv: list) -> list:
    return ["nsenter", f"--mount=/proc/{holder}/ns/mnt", "--", *argv]


def containerd_argv(state_dir: str, bins: dict, holder: int) -> list:
    return _in_ns(holder, [os.path.join(bins["containerd"], "containerd"),
                           "--config", os.path.join(node_dir(state_dir), "containerd.toml")])


def kubelet_argv(state_dir: str, bins: dict, holder: int) -> list:
    n = node_dir(state_dir)
    return _in_ns(holder, [os.path.join(bins["kubernetes"], "kubelet"),
                           f"--config={n}/kubelet.yaml", f"--kubeconfig={n}/kubeconfig",
                           f"--hostname-override={NODE_NAME}", "--root-dir=/var/lib/kubelet", "--v=1"])


def node_env(bins: dict) -> dict:
    env = dict(os.environ)
    # The shim is found on PATH; kubelet must never probe a cloud metadata service.
    env["PATH"] = bins["containerd"] + ":/usr/sbin:/usr/bin:/sbin:/bin"
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


def ctr(state_dir: str, bins: dict, *args: str, **kw):
    sock = os.path.join(node_dir(state_dir), "containerd.sock")
    return _run(os.path.join(bins["containerd"], "ctr"), "--address", sock, "-n", "k8s.io", *args, **kw)


def import_images(state_dir: str, bins: dict) -> None:
    """The pause image (the sandbox) and LOCAL_APP_IMAGE, into the CRI's namespace."""
    ctr(state_dir, bins, "images", "import", pause_archive())
    ctr(state_dir, bins, "images", "import", app_archive())


def node_ready(get_json) -> bool:
    node = get_json(f"/api/v1/nodes/{NODE_NAME}")
    if not node:
        return False
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))


# --- teardown --------------------------------------------------------------------------------

def _pids_in_ns(ns: str) -> set:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry}/ns/mnt") == ns:
                    found.add(int(entry))
    return found


def _kill_all(pids_fn, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    sig = signal.SIGTERM
    while True:
        pids = pids_fn() - {os.getpid()}
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        if time.monotonic() > deadline - timeout / 2:
            sig = signal.SIGKILL
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} still running: {sorted(pids)}")
        time.sleep(0.1)


def stop(state_dir: str, ns: str | None) -> None:
    """After kubelet stopped: containers, shims, containerd, the holder; cgroups; check mounts."""
    root = cgroup_root(state_dir)
    _kill_all(lambda: _cgroup_pids(root), "processes in the node's cgroups")
    if ns:
        _kill_all(lambda: _pids_in_ns(ns), "processes in the node's mount namespace")
    left = _remove_cgroups(root)
    if left:
        raise RuntimeError(f"cgroups left behind: {left}")
    with open("/proc/self/mountinfo", encoding="utf-8") as mounts:
        stale = [line for line in mounts if node_dir(state_dir) in line]
    if stale:
        raise RuntimeError(f"mounts left behind: {stale}")
