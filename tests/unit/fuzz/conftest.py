# -*- coding: utf-8 -*-
"""Settings and helpers of the fuzz tests (hypothesis) of the collection's pure parsers.

Deterministic by default: ``derandomize`` (examples derived from each test's name, no
example database), a bounded number of examples and a deadline per example, so that the
set runs in well under a minute on a loaded machine. To explore further locally:

    IBMREG_FUZZ_EXAMPLES=5000 IBMREG_FUZZ_RANDOM=1 .venv/bin/python -m pytest tests/unit/fuzz

``IBMREG_FUZZ_STRICT=1`` also fails on the known bugs listed in ``KNOWN_BUGS``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import importlib
import os
import pkgutil
import re
import signal
import types

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ibmreg-fuzz",
    derandomize=os.environ.get("IBMREG_FUZZ_RANDOM") != "1",
    database=None,
    max_examples=int(os.environ.get("IBMREG_FUZZ_EXAMPLES", "50")),
    # Time bound per input: a parser that needs more than this on a small input has a
    # pathological case (backtracking regex, quadratic loop).
    deadline=datetime.timedelta(milliseconds=int(os.environ.get("IBMREG_FUZZ_DEADLINE_MS", "2000"))),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile("ibmreg-fuzz")

PACKAGE = "ansible_collections.ibmcloud.registry.plugins.module_utils"


def find(part, name):
    """The attribute ``name`` of any module of the module_utils package ``part``.

    Found by name, not by file, so that the tests follow a module split into several files.
    """
    package = importlib.import_module("%s.%s" % (PACKAGE, part))
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        module = importlib.import_module("%s.%s" % (package.__name__, info.name))
        if name in vars(module):
            return getattr(module, name)
    raise LookupError("no module of %s defines %s" % (package.__name__, name))


def own_errors():
    """The collection's own error types: the only exceptions a parser may raise."""
    return (find("pull_secrets", "DockerConfigError"), find("containerd", "ContainerdHostsError"),
            find("iam", "PlanError"), find("openshift", "OpenShiftError"), find("kube", "KubeError"))


# Bugs the fuzzing found, each with a plain regression test marked xfail(strict=True)
# (test_fuzz_regressions.py). While one is open, the fuzz tests tolerate exactly that
# exception from exactly that function; once it is fixed the regression test passes,
# strict xfail turns that into a failure, and the entry here and the marker go.
KNOWN_BUGS = (
    # (function of the collection where the exception is raised, type, message)
)


def _raised_in(exc):
    """Name of the innermost function of the collection that the exception passed through."""
    name, trace = None, exc.__traceback__
    while trace is not None:
        if "/plugins/module_utils/" in trace.tb_frame.f_code.co_filename.replace(os.sep, "/"):
            name = trace.tb_frame.f_code.co_name
        trace = trace.tb_next
    return name


def _known(exc):
    if os.environ.get("IBMREG_FUZZ_STRICT") == "1":
        return False
    where = _raised_in(exc)
    return any(where == name and isinstance(exc, kind) and re.search(text, str(exc))
               for name, kind, text in KNOWN_BUGS)


class InputTimeout(Exception):
    """A single input kept a parser busy past HARD_LIMIT (a loop that does not end)."""


# hypothesis's deadline is measured after an example returns; this alarm also ends an
# example that would never return.
HARD_LIMIT = float(os.environ.get("IBMREG_FUZZ_HARD_LIMIT_S", "20"))


def _alarm(_signum, _frame):
    raise InputTimeout("one input took more than %s s" % HARD_LIMIT)


def call(func, *args, **kwargs):
    """``func(*args)``; the result, or None when it raised one of the collection's errors.

    Any other exception (TypeError, KeyError, RecursionError, ...) fails the test.
    """
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, HARD_LIMIT)
    try:
        return func(*args, **kwargs)
    except own_errors():
        return None
    except Exception as exc:  # pylint: disable=broad-except
        if _known(exc):
            return None
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="session")
def fuzz():
    """``fuzz.find(part, name)`` and ``fuzz.call(func, *args)`` for the tests."""
    return types.SimpleNamespace(find=find, call=call, own_errors=own_errors())
