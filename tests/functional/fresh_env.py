"""A user's machine, from nothing: the collection tarball, a new virtualenv with only what a
requirements file names, and a new collections path.

Used by the consumer install and execution environment tests. Galaxy is not reachable
here, so kubernetes.core (the one collection dependency) is copied into the new collections
path from the `ansible` package of this checkout's .venv, as `ansible-galaxy collection
install kubernetes.core` would put it there; every other step is the user's own command.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import sysconfig

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEV_BIN = os.path.dirname(sys.executable)


def run(command, cwd=None, env=None, timeout=900):
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False,
                          timeout=timeout)
    detail = "%s failed (%s):\n%s\n%s" % (command, proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:])
    assert proc.returncode == 0, detail
    return proc


def galaxy_meta() -> dict:
    with open(os.path.join(REPO, "galaxy.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def tarball_name() -> str:
    meta = galaxy_meta()
    return "%s-%s-%s.tar.gz" % (meta["namespace"], meta["name"], meta["version"])


def build_tarball(dest: str) -> str:
    """`ansible-galaxy collection build` of this checkout into dest; returns the tarball path."""
    os.makedirs(dest, exist_ok=True)
    run([os.path.join(DEV_BIN, "ansible-galaxy"), "collection", "build", REPO, "--output-path", dest, "--force"])
    built = glob.glob(os.path.join(dest, "*.tar.gz"))
    assert [os.path.basename(b) for b in built] == [tarball_name()], built
    return built[0]


def new_venv(path: str, *pip_args: str) -> str:
    """A virtualenv without system site-packages, then `pip install <pip_args>`; returns its bin/."""
    base_python = getattr(sys, "_base_executable", None) or shutil.which("python3")
    run([base_python, "-m", "venv", path])
    bin_dir = os.path.join(path, "bin")
    if pip_args:
        run([os.path.join(bin_dir, "python"), "-m", "pip", "install", "-q", *pip_args], timeout=1800)
    return bin_dir


def new_collections_path(path: str) -> str:
    """An empty collections path holding only kubernetes.core (see the module docstring)."""
    site = sysconfig.get_paths()["purelib"]
    source = os.path.join(site, "ansible_collections", "kubernetes", "core")
    target = os.path.join(path, "ansible_collections", "kubernetes", "core")
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    return path


def clean_env(bin_dir: str, collections: str, **extra: str) -> dict:
    """An environment that sees only the new venv and the new collections path."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("ANSIBLE_", "VIRTUAL_ENV", "PYTHON", "K8S_AUTH_"))}
    env["PATH"] = bin_dir + os.pathsep + "/usr/bin:/bin"
    env["ANSIBLE_COLLECTIONS_PATH"] = collections
    env["ANSIBLE_COLLECTIONS_SCAN_SYS_PATH"] = "false"
    env["ANSIBLE_PYTHON_INTERPRETER"] = os.path.join(bin_dir, "python")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["HOME"] = os.path.dirname(collections)
    env.update(extra)
    return env


def write_playbook(path: str, plays: list) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(plays, handle, sort_keys=False)
    return path
