"""Real containerd, a real TLS registry and a hand-made OCI image, all on loopback.

Used by the functional tests of the containerd_hosts module and role. Everything lives
under one temporary directory; every process started here is stopped by the same
object that started it (by its own pid, never by name).

- ``make_pki``: a private CA, a server certificate for 127.0.0.1/localhost and a client
  certificate, made with openssl.
- ``write_oci_image``: a one-layer OCI image layout written by hand (no network).
- ``Registry``: ``docker-registry serve`` with TLS and htpasswd (optionally requiring
  client certificates), and ``push`` through skopeo.
- ``Containerd``: ``containerd`` with root/state/socket in the temp dir and the CRI
  plugin disabled, and ``pull`` through ``ctr --hosts-dir``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time

BINARIES = ("containerd", "ctr", "docker-registry", "skopeo", "htpasswd", "openssl")
START_TIMEOUT = 30


def missing_binaries():
    """The tools this lab needs that are not on PATH."""
    return [name for name in BINARIES if shutil.which(name) is None]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(argv, **kwargs):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


# --- PKI ---------------------------------------------------------------------------

def _sign(pki, name, subject, extensions):
    key, csr, cert = (os.path.join(pki, name + ext) for ext in (".key", ".csr", ".pem"))
    ext_file = os.path.join(pki, name + ".ext")
    with open(ext_file, "w") as handle:
        handle.write(extensions)
    _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
          "-subj", subject, "-out", csr])
    _run(["openssl", "x509", "-req", "-in", csr, "-CA", os.path.join(pki, "ca.pem"),
          "-CAkey", os.path.join(pki, "ca.key"), "-CAcreateserial", "-days", "2",
          "-extfile", ext_file, "-out", cert])
    return cert, key


def make_pki(pki):
    """CA, server and client certificates under ``pki``; returns their paths."""
    os.makedirs(pki, exist_ok=True)
    _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
          "-keyout", os.path.join(pki, "ca.key"), "-subj", "/CN=containerd-hosts test CA",
          "-out", os.path.join(pki, "ca.pem")])
    server = _sign(pki, "server", "/CN=127.0.0.1",
                   "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                   "extendedKeyUsage=serverAuth\n")
    client = _sign(pki, "client", "/CN=containerd-hosts client",
                   "extendedKeyUsage=clientAuth\n")
    return {"ca": os.path.join(pki, "ca.pem"), "server": server, "client": client}


# --- a one-layer OCI image, by hand ------------------------------------------------

def _blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", digest)
    with open(path, "wb") as handle:
        handle.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def _layer_tar(files):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
    return raw.getvalue()


def write_oci_image(layout, tag="v1", text="hello from containerd_hosts\n"):
    """Write an OCI image layout with one layer holding /hello.txt; returns its manifest digest."""
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    tar = _layer_tar({"hello.txt": text.encode()})
    layer = _blob(layout, gzip.compress(tar, mtime=0))
    layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
    config = _blob(layout, json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
    }, sort_keys=True).encode())
    config["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = _blob(layout, json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config, "layers": [layer],
    }, sort_keys=True).encode())
    manifest.update({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                     "annotations": {"org.opencontainers.image.ref.name": tag},
                     "platform": {"architecture": "amd64", "os": "linux"}})
    with open(os.path.join(layout, "index.json"), "w") as handle:
        json.dump({"schemaVersion": 2, "manifests": [manifest]}, handle)
    with open(os.path.join(layout, "oci-layout"), "w") as handle:
        json.dump({"imageLayoutVersion": "1.0.0"}, handle)
    return manifest["digest"]


# --- processes -----------------------------------------------------------------------

class _Process:
    """One background process that this object started and stops by its own pid."""

    def __init__(self, argv, log_path, cwd=None):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=cwd, start_new_session=True)

    def log_tail(self, lines=30):
        with open(self.log_path, "rb") as handle:
            return b"\n".join(handle.read().splitlines()[-lines:]).decode(errors="replace")

    def wait_until(self, ready, what):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s:\n%s" % (what, self.proc.returncode, self.log_tail()))
            if ready():
                return
            time.sleep(0.1)
        raise RuntimeError("%s not ready after %ss:\n%s" % (what, START_TIMEOUT, self.log_tail()))

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


def _port_open(port):
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Registry:
    """docker-registry on 127.0.0.1 with TLS and htpasswd auth (distribution 2.8)."""

    def __init__(self, workdir, pki, user, password, require_client_cert=False):
        os.makedirs(workdir, exist_ok=True)
        self.port = free_port()
        self.host = "127.0.0.1:%d" % self.port
        self.user, self.password, self.pki = user, password, pki
        htpasswd = os.path.join(workdir, "htpasswd")
        with open(htpasswd, "w") as handle:
            handle.write(_run(["htpasswd", "-Bbn", user, password]).stdout)
        tls = {"certificate": pki["server"][0], "key": pki["server"][1]}
        if require_client_cert:
            tls["clientcas"] = [pki["ca"]]
        config = {
            "version": 0.1,
            "log": {"level": "info"},
            "storage": {"filesystem": {"rootdirectory": os.path.join(workdir, "data")}},
            "http": {"addr": self.host, "tls": tls},
            "auth": {"htpasswd": {"realm": "containerd-hosts-test", "path": htpasswd}},
        }
        config_file = os.path.join(workdir, "config.yml")
        with open(config_file, "w") as handle:
            json.dump(config, handle)  # JSON is YAML
        # skopeo's --dest-cert-dir wants the CA as *.crt and a client pair as *.cert/*.key.
        self.cert_dir = os.path.join(workdir, "skopeo-certs")
        os.makedirs(self.cert_dir, exist_ok=True)
        shutil.copy(pki["ca"], os.path.join(self.cert_dir, "ca.crt"))
        if require_client_cert:
            shutil.copy(pki["client"][0], os.path.join(self.cert_dir, "client.cert"))
            shutil.copy(pki["client"][1], os.path.join(self.cert_dir, "client.key"))
        self.process = _Process(["docker-registry", "serve", config_file],
                                os.path.join(workdir, "registry.log"))
        self.process.wait_until(lambda: _port_open(self.port), "docker-registry")

    def push(self, layout, tag, repository):
        """Copy the OCI layout's ``tag`` to ``<this registry>/<repository>``."""
        _run(["skopeo", "copy", "--quiet", "--dest-cert-dir", self.cert_dir,
              "--dest-creds", "%s:%s" % (self.user, self.password),
              "oci:%s:%s" % (layout, tag), "docker://%s/%s" % (self.host, repository)])

    def stop(self):
        self.process.stop()


class Containerd:
    """containerd with everything under ``workdir``, CRI disabled, native snapshotter."""

    def __init__(self, workdir):
        os.makedirs(workdir, exist_ok=True)
        self.address = os.path.join(workdir, "containerd.sock")
        config_file = os.path.join(workdir, "config.toml")
        with open(config_file, "w") as handle:
            handle.write(
                "version = 2\n"
                "root = %s\n"
                "state = %s\n"
                'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                "[grpc]\n  address = %s\n"
                "[ttrpc]\n  address = %s\n"
                '[plugins."io.containerd.internal.v1.opt"]\n  path = %s\n'
                % tuple(json.dumps(p) for p in (
                    os.path.join(workdir, "root"), os.path.join(workdir, "state"),
                    self.address, self.address + ".ttrpc", os.path.join(workdir, "opt"))))
        self.process = _Process(["containerd", "--config", config_file],
                                os.path.join(workdir, "containerd.log"))
        self.process.wait_until(self._serving, "containerd")

    def _serving(self):
        if not os.path.exists(self.address):
            return False
        return subprocess.run(["ctr", "--address", self.address, "version"],
                              capture_output=True, check=False).returncode == 0

    def pull(self, ref, hosts_dir=None, user=None, namespace="default"):
        """``ctr images pull`` through ``hosts_dir``; returns the CompletedProcess."""
        argv = ["ctr", "--address", self.address, "--namespace", namespace,
                "images", "pull", "--snapshotter", "native"]
        if hosts_dir:
            argv += ["--hosts-dir", hosts_dir]
        if user:
            argv += ["--user", user]
        return subprocess.run(argv + [ref], capture_output=True, text=True, timeout=120, check=False)

    def stop(self):
        self.process.stop()
