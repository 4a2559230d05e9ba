"""Token-auth registries like icr.io and cp.icr.io on loopback, for tests only.

Real parts: Debian's ``docker-registry`` (distribution 2.8), once for ``us.icr.io`` and
once for ``cp.icr.io``, each configured for token auth (``auth.token``: realm, service,
issuer, rootcertbundle) with TLS; skopeo pushes the test image through the token flow.
The realm is the LOCAL STAND-IN for the registry's token service
(tests/standins/token_service.py), which asks the IAM stand-in about API keys.

Every address is on 127.0.0.0/8: each registry listens on port 443 of an address of its
own (``127.<a>.<b>.1`` for us.icr.io, ``.2`` for cp.icr.io, the token service on
``.3``), so that a client which maps the real names to those addresses (a node's or a
controller's own /etc/hosts in a private mount namespace) reaches them as
``https://us.icr.io`` and ``https://cp.icr.io``. A CA of its own signs the serving
certificate (the icr.io names and the addresses) and the token signing certificate.

Node side: :meth:`TokenRegistries.node_hosts` writes ``hosts.toml`` mirrors for the icr.io
names into a node's containerd ``config_path`` (read at every pull, no restart) and
restores what was there. Controller side: :meth:`TokenRegistries.interpreter` writes a
Python wrapper for ``ansible_python_interpreter`` that runs the module in a private mount
namespace with those names mapped, and with ``strace`` recording every connect().
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import random
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import token_service  # noqa: E402  pylint: disable=wrong-import-position

IAM_DOMAIN = "us.icr.io"
ENTITLED_DOMAIN = "cp.icr.io"
# Every icr.io name a test might send somewhere: all map to loopback in the namespaces.
ICR_NAMES = ["icr.io", "cp.icr.io", "us.icr.io", "de.icr.io", "private.icr.io", "private.us.icr.io",
             "registry.bluemix.net"]


def _port_free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, port))
            return True
        except OSError:
            return False


def pick_addresses() -> list:
    """Three loopback addresses 127.a.b.1-3 whose port 443 is free."""
    for _attempt in range(50):
        base = "127.%d.%d." % (random.randint(64, 250), random.randint(1, 250))
        addresses = [base + str(i) for i in (1, 2, 3)]
        if all(_port_free(a, 443) for a in addresses):
            return addresses
    raise RuntimeError("no free loopback address with port 443")


# --- PKI -----------------------------------------------------------------------------------

def _write(path: str, data: bytes, mode: int = 0o644) -> None:
    with open(path, "wb") as out:
        out.write(data)
    os.chmod(path, mode)


def _key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def make_pki(pki: str, names: list, addresses: list) -> dict:
    """CA, serving certificate (names + addresses) and token signing certificate."""
    os.makedirs(pki, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    later = now + datetime.timedelta(days=30)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ibmreg token registry stand-in CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(later)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))

    def leaf(cn, sans, usage):
        key = _key()
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                   .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now).not_valid_after(later)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                  critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    server_key, server = leaf(names[0], sans, [ExtendedKeyUsageOID.SERVER_AUTH])
    signing_key, signing = leaf("ibmreg token service stand-in signing key", None,
                                [ExtendedKeyUsageOID.SERVER_AUTH])
    paths = {"ca": os.path.join(pki, "ca.crt"), "cert": os.path.join(pki, "server.crt"),
             "key": os.path.join(pki, "server.key"), "signing_cert": os.path.join(pki, "signing.crt"),
             "signing_key": os.path.join(pki, "signing.key")}
    _write(paths["ca"], ca.public_bytes(serialization.Encoding.PEM))
    _write(paths["cert"], server.public_bytes(serialization.Encoding.PEM))
    _write(paths["key"], _key_pem(server_key), 0o600)
    _write(paths["signing_cert"], signing.public_bytes(serialization.Encoding.PEM))
    _write(paths["signing_key"], _key_pem(signing_key), 0o600)
    # skopeo's --cert-dir must hold only ca.crt (a key beside it means a client certificate).
    os.makedirs(os.path.join(pki, "client"), exist_ok=True)
    shutil.copy(paths["ca"], os.path.join(pki, "client", "ca.crt"))
    paths["cert_dir"] = os.path.join(pki, "client")
    return paths


# --- IAM (the stand-in, over HTTP) -----------------------------------------------------------

class IamClient:
    """Test setup against the IAM stand-in: service IDs, policies, keys (as an admin)."""

    def __init__(self, url: str, apikey: str, account_id: str):
        self.url = url.rstrip("/")
        self.apikey = apikey
        self.account_id = account_id
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._token = None

    def _call(self, method, path, body=None, form=False, auth=True):
        headers = {"Accept": "application/json"}
        data = None
        if form:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = body.encode()
        elif body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        if auth:
            headers["Authorization"] = "Bearer " + self.token()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with self.opener.open(request, timeout=15) as response:
                raw = response.read()
                return json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raise RuntimeError("IAM stand-in %s %s: HTTP %s %s" % (method, path, exc.code, exc.read()[:300])) from None

    def token(self):
        if self._token is None:
            body = "grant_type=%s&apikey=%s" % (token_service.GRANT_TYPE_APIKEY, urllib.request.quote(self.apikey))
            self._token = self._call("POST", "/identity/token", body, form=True, auth=False)["access_token"]
        return self._token

    def service_id(self, name: str) -> dict:
        return self._call("POST", "/v1/serviceids/", {"account_id": self.account_id, "name": name})

    def api_key(self, iam_id: str, name: str) -> tuple:
        record = self._call("POST", "/v1/apikeys", {"name": name, "iam_id": iam_id, "account_id": self.account_id})
        return record["id"], record["apikey"]

    def delete_api_key(self, key_id: str) -> None:
        self._call("DELETE", "/v1/apikeys/" + key_id)

    def policy(self, iam_id: str, roles: list, region: str | None = None, namespace: str | None = None) -> str:
        resource = [{"key": "accountId", "operator": "stringEquals", "value": self.account_id},
                    {"key": "serviceName", "operator": "stringEquals", "value": "container-registry"}]
        if region:
            resource.append({"key": "region", "operator": "stringEquals", "value": region})
        if namespace:
            resource += [{"key": "resourceType", "operator": "stringEquals", "value": "namespace"},
                         {"key": "resource", "operator": "stringEquals", "value": namespace}]
        body = {"type": "access",
                "control": {"grant": {"roles": [{"role_id": token_service.ROLE_PREFIX + r} for r in roles]}},
                "subject": {"attributes": [{"key": "iam_id", "operator": "stringEquals", "value": iam_id}]},
                "resource": {"attributes": resource}}
        return self._call("POST", "/v2/policies", body)["id"]


# --- the registries --------------------------------------------------------------------------

class TokenRegistries:
    """docker-registry for us.icr.io and cp.icr.io with token auth, and the token service stand-in."""

    # The registry names that node_hosts() sends to these registries (a subclass serves others).
    DOMAINS = (IAM_DOMAIN, ENTITLED_DOMAIN)

    def __init__(self, state_dir: str, iam_url: str, iam_apikey: str):
        self.state_dir = os.path.abspath(state_dir)
        self.iam_url = iam_url
        self.iam_apikey = iam_apikey
        self.procs = {}
        self.token = None
        self.addresses = {}
        self.pki = {}
        self.entitlement_key = "standin-entitlement-" + secrets.token_urlsafe(24)
        self.publisher = ("standin-publisher", secrets.token_urlsafe(24))

    def start(self) -> "TokenRegistries":
        os.makedirs(self.state_dir, exist_ok=True)
        us_addr, cp_addr, token_addr = pick_addresses()
        self.addresses = {IAM_DOMAIN: us_addr, ENTITLED_DOMAIN: cp_addr, "token": token_addr}
        self.pki = make_pki(os.path.join(self.state_dir, "pki"), [IAM_DOMAIN, ENTITLED_DOMAIN, "icr.io"],
                            [us_addr, cp_addr, token_addr])
        self.token = token_service.TokenServiceStandIn(
            cert=self.pki["cert"], key=self.pki["key"], signing_cert=self.pki["signing_cert"],
            signing_key=self.pki["signing_key"], iam_url=self.iam_url, iam_apikey=self.iam_apikey,
            services={IAM_DOMAIN: {"kind": "iam"}, ENTITLED_DOMAIN: {"kind": "entitled"}},
            host=token_addr, port=443).start()
        self.token.add_entitlement_key(self.entitlement_key)
        self.token.add_publisher(*self.publisher)
        try:
            for domain in (IAM_DOMAIN, ENTITLED_DOMAIN):
                self._start_registry(domain)
        except Exception:
            self.stop()
            raise
        return self

    def _start_registry(self, domain: str) -> None:
        base = os.path.join(self.state_dir, domain)
        os.makedirs(os.path.join(base, "data"), exist_ok=True)
        config = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": os.path.join(base, "data")}, "delete": {"enabled": True}},
            "http": {"addr": "%s:443" % self.addresses[domain], "secret": secrets.token_hex(16),
                     "tls": {"certificate": self.pki["cert"], "key": self.pki["key"]}},
            "auth": {"token": {"realm": self.token.realm, "service": domain, "issuer": token_service.ISSUER,
                               "rootcertbundle": self.pki["ca"]}},
        }
        path = os.path.join(base, "config.yml")
        with open(path, "w", encoding="ascii") as out:
            json.dump(config, out, indent=2)  # JSON is YAML
        log = open(os.path.join(base, "registry.log"), "ab")  # pylint: disable=consider-using-with
        self.procs[domain] = subprocess.Popen(["docker-registry", "serve", path], stdout=log, stderr=log,
                                              stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 30
        while True:
            if self.procs[domain].poll() is not None:
                raise RuntimeError("docker-registry for %s exited: %s" % (domain, self.registry_log(domain)[-2000:]))
            status, _headers = self.get("https://%s/v2/" % self.addresses[domain])
            if status == 401:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("docker-registry for %s not ready: %s" % (domain, self.registry_log(domain)[-2000:]))
            time.sleep(0.2)

    def registry_log(self, domain: str) -> str:
        with open(os.path.join(self.state_dir, domain, "registry.log"), encoding="utf-8", errors="replace") as src:
            return src.read()

    def get(self, url: str, headers: dict | None = None):
        """(status, headers) of a GET that trusts only this CA and never uses a proxy."""
        context = ssl.create_default_context(cafile=self.pki["ca"])
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=context))
        try:
            with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
                return response.status, response.headers
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers
        except (urllib.error.URLError, OSError):
            return None, None

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.procs = {}
        if self.token is not None:
            self.token.stop()
            self.token = None

    # content
    def push(self, layout: str, tag: str, domain: str, repository: str, username: str, password: str):
        """skopeo copy of an OCI layout into a registry, through the token flow."""
        ref = "docker://%s/%s:%s" % (self.addresses[domain], repository, tag)
        return subprocess.run(["skopeo", "copy", "--quiet", "--dest-cert-dir", self.pki["cert_dir"],
                               "--dest-creds", "%s:%s" % (username, password), "oci:%s:%s" % (layout, tag), ref],
                              capture_output=True, text=True, check=False, timeout=120,
                              env=_no_proxy_env())

    def publish(self, layout: str, tag: str, domain: str, repository: str) -> None:
        result = self.push(layout, tag, domain, repository, *self.publisher)
        if result.returncode:
            raise RuntimeError("skopeo push to %s failed: %s" % (domain, result.stderr))

    # node side
    def hosts_toml(self, domain: str) -> str:
        url = "https://%s" % self.addresses[domain]
        return ('server = "%s"\n\n[host."%s"]\n  ca = "%s"\n  capabilities = ["pull", "resolve"]\n'
                % (url, url, self.pki["ca"]))

    @contextlib.contextmanager
    def node_hosts(self, certs_dir: str):
        """hosts.toml mirrors on a node: us.icr.io to its registry; cp.icr.io keeps the hosts
        that were there and gains this registry after them. Restored afterwards."""
        saved = {}
        for domain in self.DOMAINS:
            path = os.path.join(certs_dir, domain, "hosts.toml")
            saved[path] = open(path, encoding="utf-8").read() if os.path.exists(path) else None  # noqa: SIM115
        try:
            for path, before in saved.items():
                domain = os.path.basename(os.path.dirname(path))
                text = self.hosts_toml(domain)
                if before and domain == ENTITLED_DOMAIN:
                    url = "https://%s" % self.addresses[domain]
                    text = before.rstrip("\n") + '\n\n[host."%s"]\n  ca = "%s"\n  capabilities = ["pull", "resolve"]\n' % (
                        url, self.pki["ca"])
                os.makedirs(os.path.dirname(path), exist_ok=True)
                _atomic_write(path, text)
            yield
        finally:
            for path, before in saved.items():
                if before is None:
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(path)
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.dirname(path))
                else:
                    _atomic_write(path, before)

    # controller side
    def interpreter(self, workdir: str, python: str, trace: str) -> str:
        """A Python wrapper (for ansible_python_interpreter): a private mount namespace whose
        /etc/hosts maps the icr.io names here and whose resolver is 127.0.0.1, and strace
        appending every connect() of the module to ``trace``."""
        os.makedirs(workdir, exist_ok=True)
        hosts = os.path.join(workdir, "hosts")
        with open(hosts, "w", encoding="ascii") as out:
            out.write("127.0.0.1 localhost\n::1 localhost\n")
            out.write("%s %s\n" % (self.addresses[IAM_DOMAIN], " ".join(n for n in ICR_NAMES if n != ENTITLED_DOMAIN)))
            out.write("%s %s\n" % (self.addresses[ENTITLED_DOMAIN], ENTITLED_DOMAIN))
        resolv = os.path.join(workdir, "resolv.conf")
        with open(resolv, "w", encoding="ascii") as out:
            out.write("nameserver 127.0.0.1\n")
        wrapper = os.path.join(workdir, "python-in-ns")
        inner = 'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@"'
        with open(wrapper, "w", encoding="ascii") as out:
            out.write("#!/bin/sh\n"
                      "# The module's Python with the icr.io names on loopback (token registry stand-in),\n"
                      "# every connect() traced.\n"
                      "exec unshare -m --propagation private /bin/sh -c '%s' ns %s %s "
                      "strace -f -qq -A --seccomp-bpf -e trace=connect -o %s %s \"$@\"\n"
                      % (inner, hosts, resolv, trace, python))
        os.chmod(wrapper, 0o755)
        return wrapper


def _atomic_write(path: str, text: str) -> None:
    tmp = path + ".tmp-%d" % os.getpid()
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)


def _no_proxy_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["NO_PROXY"] = env["no_proxy"] = "*"
    return env


_ADDRESS = re.compile(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"')


def connect_targets(trace_text: str) -> list:
    """Every IPv4/IPv6 address that a connect() in an strace log named."""
    found = []
    for line in trace_text.splitlines():
        if "connect(" not in line:
            continue
        for v4, v6 in _ADDRESS.findall(line):
            found.append(v4 or v6)
    return found


def off_loopback(addresses: list) -> list:
    bad = []
    for text in addresses:
        address = ipaddress.ip_address(text)
        mapped = getattr(address, "ipv4_mapped", None)
        if not (address.is_loopback or (mapped is not None and mapped.is_loopback)
                or address.is_unspecified):
            bad.append(text)
    return bad
