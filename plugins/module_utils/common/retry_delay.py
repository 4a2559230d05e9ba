# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How long to wait before retrying a request: the one rule for the Kubernetes and IAM clients."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import random
import time


def retry_delay(headers, attempt, base, cap, retry_after_cap):
    """Seconds to wait before the next try.

    The server's Retry-After header (seconds or an HTTP date) when it sends one, at most
    ``retry_after_cap``; else exponential backoff from ``base``, at most ``cap``, with
    jitter so that parallel writers do not retry in step.
    """
    value = headers.get("Retry-After") if headers is not None and hasattr(headers, "get") else None
    if value:
        try:
            return max(0.0, min(float(value), retry_after_cap))
        except ValueError:
            try:
                from email.utils import parsedate_to_datetime

                delta = parsedate_to_datetime(value).timestamp() - time.time()
                return max(0.0, min(delta, retry_after_cap))
            except (TypeError, ValueError, OverflowError):
                pass
    return min(base * (2 ** attempt), cap) * (0.5 + random.random() / 2)
