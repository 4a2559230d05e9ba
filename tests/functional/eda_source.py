"""What the event-driven sync test and its benchmark (tests/bench/sync_bench.py) share: the
source pull secret that the rulebook copies, and the JDK that ansible-rulebook needs."""

from __future__ import annotations

import base64
import glob
import json
import os

SOURCE_SECRET = "all-icr-io"
SOURCE = {"auths": {"127.0.0.1:5000": {
    "username": "iamapikey", "password": "k", "auth": base64.b64encode(b"iamapikey:k").decode()}}}


def java_home() -> str | None:
    """A JDK 17 for ansible-rulebook's Drools engine: $JAVA_HOME, else Debian's path."""
    for home in [os.environ.get("JAVA_HOME")] + sorted(glob.glob("/usr/lib/jvm/java-17-openjdk-*")):
        if home and os.path.exists(os.path.join(home, "bin", "java")):
            return home
    return None


def ensure_source_secret(core) -> None:
    """The source secret in ``default``, written once per cluster."""
    from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

    try:
        core.read_namespaced_secret(SOURCE_SECRET, "default")
    except ApiException:
        core.create_namespaced_secret("default", {
            "metadata": {"name": SOURCE_SECRET}, "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(json.dumps(SOURCE).encode()).decode()}})
