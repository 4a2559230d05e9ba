# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What results, diffs and messages show in place of a secret value."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

REDACTED = "********"
