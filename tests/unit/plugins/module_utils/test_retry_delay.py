# -*- coding: utf-8 -*-
"""The one retry-delay rule of the Kubernetes and IAM clients."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import email.utils
import time

from ansible_collections.ibmcloud.registry.plugins.module_utils.common.retry_delay import retry_delay


def test_retry_after_seconds_are_honoured_up_to_the_cap():
    assert retry_delay({"Retry-After": "3"}, 0, base=0.2, cap=5.0, retry_after_cap=30.0) == 3.0
    assert retry_delay({"Retry-After": "600"}, 0, base=0.2, cap=5.0, retry_after_cap=30.0) == 30.0
    assert retry_delay({"Retry-After": "-4"}, 0, base=0.2, cap=5.0, retry_after_cap=30.0) == 0.0


def test_retry_after_http_date():
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    assert 15.0 <= retry_delay({"Retry-After": when}, 0, base=0.5, cap=10.0, retry_after_cap=60.0) <= 20.0


def test_backoff_grows_with_jitter_and_stays_under_the_cap():
    for attempt, ceiling in ((0, 0.5), (1, 1.0), (2, 2.0), (8, 10.0)):
        for headers in (None, {}, {"Retry-After": "soon"}):
            delay = retry_delay(headers, attempt, base=0.5, cap=10.0, retry_after_cap=60.0)
            assert ceiling / 2 <= delay <= ceiling
