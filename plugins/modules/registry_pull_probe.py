#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: registry_pull_probe
short_description: Prove that pods can pull an image, namespace by namespace
version_added: 0.1.0
description:
  - In every target namespace, runs a short-lived pod as a service account (by default
    C(default)) with the given image and C(imagePullPolicy=Always), so that the node pulls
    the image with exactly the pull secrets a workload of that service account gets - the
    last step of the IBM Cloud guide "Setting up an image registry", deploying a workload
    that pulls from the registry, done for many namespaces at once.
  - Reports per namespace V(pulled), or why the pull failed, from the kubelet's own
    message - V(unauthorized) (the registry answered 401 or 403, for example no pull
    secret or a wrong key), V(not_found) (the image or tag does not exist), V(tls) (the
    node does not trust the registry's certificate), V(timeout) (no result within
    O(timeout) seconds) or V(other) (the kubelet's message says why).
  - Deletes each probe pod as soon as its pull is decided. Probe pods carry the labels
    C(app.kubernetes.io/managed-by=ibmcloud.registry) and C(ibmcloud.registry/pull-probe),
    and an annotation with the time their run is over at the latest; probe pods of earlier
    runs past that time in the target namespaces (a run that was killed) are deleted before
    the new probe starts. A probe pod also ends on its own (C(activeDeadlineSeconds)).
  - The pod is built to pass the Pod Security C(restricted) level (non-root user 65534,
    seccomp C(RuntimeDefault), every capability dropped, no privilege escalation, a
    read-only root file system, small CPU and memory requests and limits), so it is admitted
    wherever workloads are. When admission refuses it all the same (a policy of the
    namespace, or an account that may not create pods), that namespace's outcome is
    V(refused) with the namespace and the admission message.
  - The pod runs the image's own entrypoint (or O(command)); what it does after the pull
    does not matter, the pod is deleted once the image is on the node.
author:
  - ibmcloud.registry maintainers (@ibmcloud-registry)
options:
  image:
    description:
      - The image to pull, as a pod names it, for example
        C(us.icr.io/team/app:1.4) or C(cp.icr.io/cp/product@sha256:...).
    type: str
    required: true
  service_account:
    description:
      - The service account the probe pod runs as in each namespace; its
        C(imagePullSecrets) are the credentials of the pull.
    type: str
    default: default
  timeout:
    description:
      - Seconds to wait for each namespace's pull, from the creation of its pod. A pod that
        is still pulling (or not scheduled) then is V(timeout), with what it was waiting for.
    type: int
    default: 60
  fail_on_pull_error:
    description:
      - Fail the task when the image could not be pulled in a namespace. With V(false) the
        task succeeds and reports every namespace's outcome, for a caller that collects
        them (the collection's C(verify.yml) playbook does).
      - A probe that could not run at all (outcome V(refused) or V(error)) fails the task
        either way.
    type: bool
    default: true
  host_network:
    description:
      - Run the probe pod in the node's network namespace. Only for nodes whose pod network
        cannot start pods (a node without a CNI network); ordinary clusters do not need
        it, and Pod Security C(baseline) and C(restricted) refuse it.
    type: bool
    default: false
  command:
    description:
      - The command of the probe container instead of the image's entrypoint.
    type: list
    elements: str
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ibmcloud.registry.kube
  - ibmcloud.registry.targeting
attributes:
  check_mode:
    support: full
    description: Creates and deletes nothing; reports which namespaces would be probed and the leftover probe pods it would delete.
  diff_mode:
    support: none
    description: A probe changes no object it could show a difference of.
notes:
  - O(parallelism) is how many namespaces are probed at once.
  - The probe needs C(create), C(get) and C(delete) on C(pods) in the target namespaces and
    C(list) on C(pods) (cluster-wide, or in each namespace) to find leftovers. C(list) on
    C(events) is used when allowed, for the kubelet's full wording and an earlier result.
  - C(changed) is true only when leftover probe pods of earlier runs were deleted; a probe
    leaves the cluster as it found it.
seealso:
  - module: ibmcloud.registry.icr_pull_secret
  - module: ibmcloud.registry.sa_pull_secret
"""

EXAMPLES = r"""
- name: Prove that every application namespace can pull the team's image
  ibmcloud.registry.registry_pull_probe:
    image: us.icr.io/team-a/app:1.4
    namespace_selector: ["team=a"]

- name: Probe as the service account a workload uses, with a longer timeout
  ibmcloud.registry.registry_pull_probe:
    image: cp.icr.io/cp/product/server:2.0
    service_account: product-sa
    namespaces: [cp4i]
    timeout: 180

- name: Collect the outcomes instead of failing on the first namespace that cannot pull
  ibmcloud.registry.registry_pull_probe:
    image: de.icr.io/shared/base:latest
    all_namespaces: true
    fail_on_pull_error: false
  register: probe

- name: List the namespaces that cannot pull
  ansible.builtin.debug:
    msg: "{{ probe.results | rejectattr('pulled') | map(attribute='namespace') | list }}"
"""

RETURN = r"""
results:
  description: One entry per target namespace, in the order of the namespaces.
  returned: always
  type: list
  elements: dict
  sample:
    - {namespace: team-a, name: registry-pull-probe-1a2b3c4d, service_account: default,
       image: us.icr.io/team-a/app:1.4, outcome: pulled, pulled: true, seconds: 3.1,
       message: "pulled us.icr.io/team-a/app@sha256:..."}
    - {namespace: team-b, name: registry-pull-probe-1a2b3c4d, service_account: default,
       image: us.icr.io/team-a/app:1.4, outcome: unauthorized, pulled: false, seconds: 2.0,
       message: "ErrImagePull: ... authorization failed: no basic auth credentials"}
  contains:
    namespace:
      description: The namespace.
      type: str
    name:
      description: The probe pod's name (null in check mode).
      type: str
    service_account:
      description: The service account the pod ran as.
      type: str
    image:
      description: The image.
      type: str
    outcome:
      description:
        - V(pulled), V(unauthorized), V(not_found), V(tls), V(timeout), V(other) (see the
          description); V(refused) when admission refused the pod, V(error) when an API
          request failed; V(skipped) in check mode.
      type: str
    pulled:
      description: Whether the image was pulled.
      type: bool
    message:
      description: The kubelet's message (or the admission message), as it gave it.
      type: str
    seconds:
      description: Seconds from creating the pod to the outcome.
      type: float
counts:
  description: Number of namespaces per outcome.
  returned: always
  type: dict
  sample: {pulled: 3, unauthorized: 1, not_found: 0, tls: 0, timeout: 0, other: 0, refused: 0, error: 0, skipped: 0}
leftovers:
  description: Probe pods of earlier runs found in the target namespaces, as C(namespace/name).
  returned: always
  type: list
  elements: str
leftovers_deleted:
  description: The leftovers that were deleted (none in check mode).
  returned: always
  type: list
  elements: str
run_id:
  description: This run's id, the value of the pods' C(ibmcloud.registry/pull-probe) label.
  returned: when not in check mode
  type: str
"""

from ansible_collections.ibmcloud.registry.plugins.module_utils.common.argspec import run_module
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import kube_argument_spec
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.targeting import target_argument_spec
from ansible_collections.ibmcloud.registry.plugins.module_utils.probe.runners import run_registry_pull_probe


def argument_spec():
    return kube_argument_spec().merge(target_argument_spec()).add(
        image=dict(type="str", required=True),
        service_account=dict(type="str", default="default"),
        timeout=dict(type="int", default=60),
        fail_on_pull_error=dict(type="bool", default=True),
        host_network=dict(type="bool", default=False),
        command=dict(type="list", elements="str"),
    )


def main():
    run_module(argument_spec, run_registry_pull_probe)


if __name__ == "__main__":
    main()
