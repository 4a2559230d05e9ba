"""Egress: a full playbooks/site.yml run connects only to what the run declared.

The run is the one of tests/functional/test_site.py (its ``site`` fixture: two local
control planes, plain Kubernetes and the LOCAL STAND-IN for OpenShift 4 with the router
stand-in, every part of the demo's vars file plus IAM against the LOCAL IAM STAND-IN),
with ``ansible-playbook`` started under ``strace -f``: every connect() of it and of every
process it starts (forks, modules, AnsiballZ wrappers) is recorded. The test fails on any
connect() to an address other than

* the API servers of the inventory (host and port of each kubeconfig's server),
* the IAM stand-in (the ``iam_url`` of the vars file),
* registries the vars file declares for a login check (``validate_credentials``; none in
  the demo, so registry hosts such as registry.demo.invalid:5000, cp.icr.io or the
  containerd mirrors must never be dialled or even looked up),
* unix sockets (local IPC), and AF_UNSPEC (a socket being disconnected).

Every allowed address is on loopback. A name lookup through DNS is a connect() to the
nameserver on port 53, so a module that resolves a route host name or a registry server a
user typed fails the test too. Each offending connect() is printed with its address, the
process (its command line) and the strace line.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse

import pytest

from containerd.containerd_lab import Registry, make_pki, missing_binaries
from playbook import collections_path
from test_site import CANARY_IAM_KEY, HOSTS, failures  # noqa: F401  pylint: disable=unused-import
from test_site import site  # noqa: F401  pylint: disable=unused-import  # the fixture

pytestmark = pytest.mark.cluster

STRACE = shutil.which("strace")
SYSCALLS = "connect,execve,clone,clone3,fork,vfork"
_LINE = re.compile(r"^(?P<pid>\d+)\s+(?P<call>\w+)\((?P<args>.*)$")
_RESUMED = re.compile(r"^(?P<pid>\d+)\s+<\.\.\. (?P<call>\w+) resumed>(?P<rest>.*)$")
_FAMILY = re.compile(r"sa_family=(?P<family>AF_\w+)")
_INET = re.compile(r'sin_port=htons\((?P<port>\d+)\), sin_addr=inet_addr\("(?P<addr>[^"]+)"\)')
_INET6 = re.compile(r'sin6_port=htons\((?P<port>\d+)\).*?inet_pton\(AF_INET6, "(?P<addr>[^"]+)"')
_EXECVE_ARGV = re.compile(r'^"[^"]*", \[(?P<argv>.*?)\]')
_CHILD = re.compile(r"= (?P<child>\d+)\s*$")


def _endpoint(url: str) -> tuple:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def connects(trace_path: str) -> list:
    """[(pid, family, address, port, line)] of every connect() in an strace -f log, and
    {pid: command line} from execve/clone (a fork inherits its parent's command line)."""
    commands, found, pending = {}, [], {}
    with open(trace_path, encoding="utf-8", errors="replace") as handle:
        lines = handle.read().splitlines()
    for line in lines:
        resumed = _RESUMED.match(line)
        if resumed:
            pid, call = resumed["pid"], resumed["call"]
            started = pending.pop((pid, call), None)
            if started is None:
                continue
            line = started.replace(" <unfinished ...>", "") + resumed["rest"]
        match = _LINE.match(line)
        if not match:
            continue
        pid, call, args = match["pid"], match["call"], match["args"]
        if line.endswith("<unfinished ...>"):
            pending[(pid, call)] = line
            continue
        if call == "execve":
            argv = _EXECVE_ARGV.match(args)
            if argv and "= 0" in line:
                commands[pid] = " ".join(a.strip('"') for a in re.findall(r'"(?:[^"\\]|\\.)*"', argv["argv"]))
        elif call in ("clone", "clone3", "fork", "vfork"):
            child = _CHILD.search(line)
            if child:
                commands.setdefault(child["child"], commands.get(pid, "?"))
        elif call == "connect":
            family = _FAMILY.search(args)
            family = family["family"] if family else "?"
            where = _INET.search(args) or _INET6.search(args)
            found.append((pid, family, where["addr"] if where else None, int(where["port"]) if where else None, line))
    return [(pid, family, addr, port, line, commands.get(pid, "?")) for pid, family, addr, port, line in found]


def offending(records: list, allowed: set) -> list:
    """The connect() records to anything but the allowed loopback endpoints and unix sockets."""
    bad = []
    for record in records:
        _pid, family, addr, port, _line, _command = record
        if family in ("AF_UNIX", "AF_UNSPEC", "AF_NETLINK"):
            continue
        if family in ("AF_INET", "AF_INET6") and addr is not None:
            ip = ipaddress.ip_address(addr)
            if ip.is_loopback and (str(ip), port) in allowed:
                continue
        bad.append(record)
    return bad


def _describe(record: tuple) -> str:
    pid, family, addr, port, line, command = record
    hint = " (a DNS lookup: something resolved a host name)" if port == 53 else ""
    return "%s %s:%s%s\n  process %s: %s\n  %s" % (family, addr, port, hint, pid, command[:300], line[:400])


def _resolved(host: str) -> str:
    # The endpoints come from our own kubeconfigs and stand-ins: loopback literals.
    return str(ipaddress.ip_address(host))


def traced_play(workdir: str, plays: list, trace_path: str, args: tuple = ()):
    """ansible-playbook of ``plays`` as tests/functional/playbook.py runs it, under strace -f."""
    os.makedirs(os.path.join(workdir, "tmp"), exist_ok=True)
    play = os.path.join(workdir, "play.yml")
    with open(play, "w", encoding="utf-8") as handle:
        json.dump(plays, handle)
    # --seccomp-bpf: only the traced calls stop the process (the run stays near full speed).
    command = [STRACE, "-f", "--seccomp-bpf", "-qq", "-e", "trace=" + SYSCALLS, "-e", "signal=none", "-s", "256",
               "-o", trace_path,
               os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), play] + list(args)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_HOST_KEY_CHECKING="False",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_LOCAL_TEMP=os.path.join(workdir, "tmp"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", IC_API_KEY=CANARY_IAM_KEY)
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir, timeout=1200, check=False)
    proc.document = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
    return proc


def traced_site_run(site, trace_path: str, check: bool = False):
    """playbooks/site.yml over both clusters as test_site runs it, under strace -f."""
    args = ("-i", site.inventory, "-e", "@" + site.vars_file, "--forks", "2") + (("--check", "--diff") if check else ())
    return traced_play(os.path.join(site.workdir, "egress"), [{"ansible.builtin.import_playbook": "ibmcloud.registry.site"}],
                       trace_path, args)


def allowed_endpoints(site) -> dict:
    """{(address, port): what} that the run may connect to."""
    allowed = {}
    for host, info in site.infos.items():
        address, port = _endpoint(info.server)
        allowed[(_resolved(address), port)] = "API server of " + host
    address, port = _endpoint(site.iam.url)
    allowed[(_resolved(address), port)] = "IAM stand-in"
    # Registries declared for a login check: the demo's vars file declares none.
    with open(site.vars_file, encoding="utf-8") as handle:
        assert "validate_credentials: true" not in handle.read()
    return allowed


@pytest.mark.skipif(STRACE is None, reason="strace is not installed (Debian package strace): add it to the "
                                           "Makefile's DEBIAN_PACKAGES to run the egress test")
@pytest.mark.parametrize("check", [True, False], ids=["check-mode", "first-run"])
def test_site_run_connects_only_to_declared_endpoints(site, tmp_path, check):  # pylint: disable=redefined-outer-name
    trace = str(tmp_path / "connect.strace")
    result = traced_site_run(site, trace, check=check)
    assert result.returncode == 0, failures(result)
    for host in HOSTS:
        assert result.document["stats"][host]["failures"] == 0, result.document["stats"]

    allowed = allowed_endpoints(site)
    records = connects(trace)
    bad = offending(records, set(allowed))
    assert not bad, "connect() to an undeclared address:\n" + "\n".join(_describe(r) for r in bad)

    # The trace saw the run's own traffic: every API server and the IAM stand-in were
    # reached from the traced processes (so an empty or broken trace cannot pass).
    seen = set((addr, port) for _pid, family, addr, port, _line, _cmd in records if family.startswith("AF_INET"))
    assert set(allowed) <= seen, {what: key in seen for key, what in allowed.items()}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A real registry (Debian's docker-registry, TLS, htpasswd) on loopback."""
    if missing_binaries():
        pytest.fail("missing binaries: %s (make deps installs them)" % ", ".join(missing_binaries()))
    work = tmp_path_factory.mktemp("egress-registry")
    reg = Registry(str(work / "registry"), make_pki(str(work / "pki")), "deployer", "egress-password")
    yield reg
    reg.stop()


@pytest.mark.skipif(STRACE is None, reason="strace is not installed (Debian package strace): add it to the "
                                           "Makefile's DEBIAN_PACKAGES to run the egress test")
@pytest.mark.parametrize("validate", [False, True], ids=["no-check", "validate_credentials"])
def test_a_registry_is_contacted_only_when_validate_credentials_asks(site, registry, tmp_path, validate):
    # pylint: disable=redefined-outer-name
    info = site.infos[HOSTS[0]]
    task = {"ibmcloud.registry.icr_pull_secret": {
        "name": "egress-%s" % ("validated" if validate else "plain"), "namespaces": ["demo-web"],
        "registry": {"server": registry.host, "username": "deployer", "password": "egress-password"},
        "validate_credentials": validate, "registry_ca_path": registry.pki["ca"]}}
    plays = [{"name": "egress", "hosts": "localhost", "connection": "local", "gather_facts": False,
              "module_defaults": {"group/ibmcloud.registry.kube": {"kubeconfig": info.kubeconfig}},
              "tasks": [dict(task, name="pull secret")]}]
    trace = str(tmp_path / "connect.strace")
    result = traced_play(str(tmp_path / "play"), plays, trace, ("-i", "localhost,"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    address, port = registry.host.rsplit(":", 1)
    api = (_resolved(_endpoint(info.server)[0]), _endpoint(info.server)[1])
    records = connects(trace)
    declared = {api, (address, int(port))} if validate else {api}
    bad = offending(records, declared)
    assert not bad, "connect() to an undeclared address:\n" + "\n".join(_describe(r) for r in bad)
    seen = set((addr, port) for _pid, family, addr, port, _line, _cmd in records if family.startswith("AF_INET"))
    assert ((address, int(port)) in seen) == validate, seen


def test_the_trace_parser_flags_what_it_must(tmp_path):
    """The filter itself: a DNS query, a registry, an API server, a unix socket."""
    trace = tmp_path / "sample.strace"
    trace.write_text(
        '100 execve("/usr/bin/python3", ["python3", "AnsiballZ_icr_pull_secret.py"], 0x7ffd /* 30 vars */) = 0\n'
        '100 clone(child_stack=NULL, flags=CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 101\n'
        '101 connect(5, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16) = 0\n'
        '100 connect(3, {sa_family=AF_INET, sin_port=htons(6443), sin_addr=inet_addr("127.0.0.1")}, 16'
        ' <unfinished ...>\n'
        '100 <... connect resumed>) = -1 EINPROGRESS (Operation now in progress)\n'
        '100 connect(4, {sa_family=AF_INET6, sin6_port=htons(5000), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, '
        '"::1", &sin6_addr), sin6_scope_id=0}, 28) = 0\n'
        '100 connect(6, {sa_family=AF_UNIX, sun_path="/dev/log"}, 110) = 0\n'
        '100 connect(7, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("127.0.0.1")}, 16) = 0\n',
        encoding="utf-8")
    records = connects(str(trace))
    assert len(records) == 5
    bad = offending(records, {("127.0.0.1", 6443)})
    assert [(r[2], r[3]) for r in bad] == [("10.255.255.53", 53), ("::1", 5000), ("127.0.0.1", 443)]
    assert bad[0][5] == "python3 AnsiballZ_icr_pull_secret.py"
    assert "DNS lookup" in _describe(bad[0])
