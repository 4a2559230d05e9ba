"""The pure parts of the namespace_watch event source: arguments, what is reported, debounce, 410."""

from __future__ import annotations

import importlib.util
import os

import pytest

PLUGIN = os.path.join(os.path.dirname(__file__), "..", "..", "extensions", "eda", "plugins",
                      "event_source", "namespace_watch.py")
_spec = importlib.util.spec_from_file_location("namespace_watch", PLUGIN)
nw = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nw)


def ns(name, labels=None, phase="Active", rv="1"):
    return {"metadata": {"name": name, "labels": labels or {}, "resourceVersion": rv},
            "status": {"phase": phase}}


def test_args_defaults_and_k8s_auth_environment():
    settings = nw.parse_args({}, environ={"K8S_AUTH_KUBECONFIG": "/k", "K8S_AUTH_VERIFY_SSL": "no"})
    assert settings["kubeconfig"] == "/k"
    assert settings["validate_certs"] is False
    assert settings["debounce"] == 1.0
    assert "kube-system" in settings["exclude_namespaces"]
    # An argument wins over the variable.
    assert nw.parse_args({"kubeconfig": "/a"}, environ={"K8S_AUTH_KUBECONFIG": "/k"})["kubeconfig"] == "/a"


def test_args_all_errors_at_once():
    with pytest.raises(ValueError) as err:
        nw.parse_args({"debounce": "soon", "resync_period": -1, "labels": "x",
                       "exclude_namespaces": "default"}, environ={})
    message = str(err.value)
    for part in ("unknown argument 'labels'", "debounce must be a number", "resync_period must not be negative",
                 "exclude_namespaces must be a list"):
        assert part in message


def test_tracker_reports_new_and_relabelled_once():
    tracker = nw.Tracker(exclude=["kube-system"])
    assert tracker.observe("ADDED", ns("a")) == "a"
    assert tracker.observe("MODIFIED", ns("a")) is None  # same labels: status or annotation change
    assert tracker.observe("MODIFIED", ns("a", {"team": "x"})) == "a"
    assert tracker.observe("ADDED", ns("kube-system")) is None
    assert tracker.observe("MODIFIED", ns("a", {"team": "x"}, phase="Terminating")) is None
    assert "a" not in tracker.known
    assert tracker.observe("ADDED", ns("b")) == "b"
    assert tracker.observe("DELETED", ns("b")) is None
    assert tracker.observe("ADDED", ns("b")) == "b"  # re-created under the same name


def test_resync_reports_what_the_watch_missed_and_forgets_gone_ones():
    tracker = nw.Tracker()
    assert tracker.resync([ns("a"), ns("b")], report_all=True) == ["a", "b"]
    assert tracker.resync([ns("a"), ns("b")]) == []
    # c was created while the source was down, b was relabelled, a deleted.
    assert tracker.resync([ns("b", {"x": "1"}), ns("c")]) == ["b", "c"]
    assert set(tracker.known) == {"b", "c"}
    # Startup reports every namespace, known or not.
    assert tracker.resync([ns("b", {"x": "1"}), ns("c")], report_all=True) == ["b", "c"]
    assert tracker.resync([ns("d", phase="Terminating")]) == []


def test_batcher_gathers_a_burst_into_one_event():
    batcher = nw.Batcher(debounce=1.0, max_wait=5.0)
    assert batcher.due(0.0) is None
    batcher.add(["a"], "watch", now=0.0)
    assert batcher.due(0.5) == 0.5
    batcher.add(["b", "a"], "watch", now=0.9)
    assert batcher.due(1.0) == pytest.approx(0.9)
    assert batcher.due(1.9) == 0
    assert batcher.take() == {"namespaces": ["a", "b"], "reason": "watch"}
    assert batcher.due(2.0) is None


def test_batcher_does_not_wait_forever_in_a_long_burst():
    batcher = nw.Batcher(debounce=1.0, max_wait=3.0)
    for step in range(10):
        batcher.add(["n%d" % step], "watch", now=step * 0.5)
        if batcher.due(step * 0.5) == 0:
            break
    assert step == 6  # 3 s after the first name, although names kept coming
    event = batcher.take()
    assert len(event["namespaces"]) == 7


def test_batcher_reason_startup_wins():
    batcher = nw.Batcher(debounce=0.0, max_wait=0.0)
    batcher.add(["a"], "watch", now=0.0)
    batcher.add(["b"], "startup", now=0.0)
    assert batcher.take()["reason"] == "startup"


def test_gone_as_exception_and_as_watch_error_event():
    class Exc(Exception):
        status = 410

    assert nw.is_gone(Exc())
    assert nw.is_gone({"type": "ERROR", "raw_object": {"kind": "Status", "code": 410}})
    assert not nw.is_gone({"type": "ERROR", "raw_object": {"kind": "Status", "code": 500}})
    assert not nw.is_gone({"type": "ADDED", "raw_object": {"code": 410}})


@pytest.mark.parametrize("name", ["pull_secret_sync.yml", "pull_secret_sync_controller.yml"])
def test_rulebooks_are_valid_for_ansible_rulebook(name):
    import yaml  # pylint: disable=import-outside-toplevel
    from ansible_rulebook.validators import Validate  # pylint: disable=import-outside-toplevel

    path = os.path.join(os.path.dirname(PLUGIN), "..", "..", "rulebooks", name)
    with open(path, encoding="utf-8") as handle:
        rulebook = yaml.safe_load(handle)
    Validate.rulebook(rulebook)  # raises on a schema error
    source = rulebook[0]["sources"][0]
    assert "ibmcloud.registry.namespace_watch" in source
    # Every argument the rulebook passes is one the source knows.
    nw.parse_args({key: 1 for key in source["ibmcloud.registry.namespace_watch"]
                   if key != "label_selector"}, environ={})
