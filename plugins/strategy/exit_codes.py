# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: exit_codes
short_description: Linear, for the last play of an audit - a failure here is an error (exit code 1)
version_added: 0.1.0
description:
  - Runs the play exactly as P(ansible.builtin.linear#strategy) does, task by task on every host.
  - "ansible-playbook exits 2 when a task failed, whatever failed; an audit such as the
    collection's C(verify.yml) needs two codes - 2 for what it found (drift) and 1 for what
    kept it from looking (errors). Used for the audit's last play, this strategy sets the
    run's exit code:"
  - 1 (an error) when a task of this play failed on any host.
  - 2 when nothing failed in this play but a host failed in an earlier play of the run
    (the earlier plays' failures are the findings), so that the last play running does not
    turn their exit code into 0.
  - Otherwise the code linear gives (0, or 4 for unreachable hosts).
author:
  - ibmcloud.registry maintainers (@ibmcloud-registry)
notes:
  - A play whose hosts all fail ends the playbook (ansible-playbook runs no further play),
    with exit code 2; put the checks that record errors in earlier plays in a C(rescue)
    so that the last play runs.
  - ansible-core 2.19 warns that strategy plugins outside ansible.builtin are deprecated,
    with no removal date. C(verify.yml) loads this one only in a run that exits 1 (its last
    play has a host only then), so clean and drifted runs print no such warning.
"""

from ansible.plugins.strategy.linear import StrategyModule as LinearStrategyModule


class StrategyModule(LinearStrategyModule):
    def run(self, iterator, play_context):  # pylint: disable=arguments-differ
        # The task queue manager marks the hosts of earlier plays' failures as failed in
        # this play's iterator and starts this play with an empty list of its own failures.
        failed_before = set(iterator.get_failed_hosts())
        result = super(StrategyModule, self).run(iterator, play_context)
        failed_here = (set(iterator.get_failed_hosts()) - failed_before) | set(self._tqm._failed_hosts)
        if failed_here:
            return self._tqm.RUN_ERROR
        if failed_before and result == self._tqm.RUN_OK:
            return self._tqm.RUN_FAILED_HOSTS
        return result
