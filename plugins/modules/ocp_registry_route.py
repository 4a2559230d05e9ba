#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ocp_registry_route
short_description: Ensure a secure external route for the OpenShift internal registry
version_added: 0.1.0
description:
  - Ensures a C(reencrypt) Route for the internal image registry service - the
    equivalent of C(oc create route reencrypt --service=image-registry) followed by
    adding the C(haproxy.router.openshift.io/balance=source) annotation - then waits,
    for at most O(wait_timeout) seconds, until a router has admitted it, and returns
    its host for C(docker login) and pull secrets.
  - "The registry's location follows the cluster: OpenShift 4 - service
    C(image-registry) in C(openshift-image-registry); OpenShift 3.11 - service
    C(docker-registry) in C(default). The cluster is recognised from API
    discovery; on a cluster without C(route.openshift.io) (plain Kubernetes) the task
    fails with a message that says so, before any write."
  - Idempotent - an existing route with the same service, target port, TLS
    termination, certificates and annotations is no change. The host that the
    router or API server assigned is not a difference unless O(hostname) asks for
    another one. Fields the task does not manage stay as they are.
  - Writes are JSON merge patches guarded by the route's C(resourceVersion) and
    recomputed from a fresh read on a conflict.
  - As an alternative, the image registry operator can create a route itself
    (C(default-route)); see O(ibmcloud.registry.ocp_registry_config#module:default_route).
author:
  - ibmcloud.registry maintainers (@ibmcloud-registry)
options:
  name:
    description: Name of the route. Defaults to the service name, as C(oc create route) does.
    type: str
  namespace:
    description:
      - Project of the registry service and the route. Defaults to
        C(openshift-image-registry) on OpenShift 4 and C(default) on OpenShift 3.11.
    type: str
  service:
    description:
      - The registry service. Defaults to C(image-registry) on OpenShift 4 and
        C(docker-registry) on OpenShift 3.11. It must exist.
    type: str
  target_port:
    description:
      - The service port the route sends traffic to, by name or number. It must match
        a port of the service.
    type: str
    default: 5000-tcp
  termination:
    description:
      - TLS termination. V(reencrypt) - the router terminates TLS with its (or your)
        certificate and opens a new TLS connection to the registry (IBM Cloud's
        choice). V(passthrough) - the router forwards TLS to the registry untouched.
    type: str
    choices: [reencrypt, passthrough]
    default: reencrypt
  hostname:
    description:
      - Custom host name for the route, for example C(registry.example.com). Without
        it the router assigns C(<name>-<namespace>.<ingress domain>), and whatever it
        assigned is kept on later runs.
      - Called C(hostname), not C(host), because C(host) is the API server URL of the
        connection options.
    type: str
  tls:
    description:
      - Certificates for the route, as PEM B(contents), not file names (use
        C(lookup('file', path))). Only the fields given are set; fields not given
        keep what the route has. Not allowed with O(termination=passthrough).
    type: dict
    suboptions:
      certificate:
        description: Certificate (chain) the router presents for O(hostname), PEM content.
        type: str
      key:
        description:
          - Private key of O(tls.certificate), PEM content. Never logged, never
            returned; diffs show it as C(********).
        type: str
      ca_certificate:
        description: CA certificate chain of O(tls.certificate), PEM content.
        type: str
      destination_ca_certificate:
        description:
          - CA that signed the registry's own serving certificate, PEM content. By
            default OpenShift trusts its service CA, which signs the registry's certificate.
        type: str
  balance:
    description:
      - Value of the C(haproxy.router.openshift.io/balance) annotation. V(source) keeps
        a client on one registry replica, as IBM Cloud's documentation recommends.
    type: str
    choices: [source, roundrobin, leastconn, random]
    default: source
  annotations:
    description:
      - More annotations for the route. Only the keys given are managed; others stay.
    type: dict
    default: {}
  wait:
    description: Wait until a router has admitted the route (C(status.ingress) condition C(Admitted)).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for admission. When they pass, or a router rejects the route
        (for example because another route claims the host), the task fails with the
        router's reason.
    type: int
    default: 120
requirements:
  - jmespath >= 1.0
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ibmcloud.registry.kube
attributes:
  check_mode:
    description: Reads only; reports the same change a real run would make. Does not wait.
  diff_mode:
    description: Shows the managed fields; certificates as C(sha256:) fingerprints, the key redacted.
notes:
  - O(parallelism) has no effect; the module writes one object.
seealso:
  - module: ibmcloud.registry.ocp_internal_pull_secret
  - module: ibmcloud.registry.ocp_registry_config
"""

EXAMPLES = r"""
# The guide "Setting up an image registry", section "Setting up a secure external route for the internal registry", steps 1-4:
# make sure the image-registry service exists, create a reencrypt route for it, and set
# the load balancing strategy to source. The registered host is what docker login uses.
- name: Secure external route for the internal registry (OpenShift 4 and 3.11 alike)
  ibmcloud.registry.ocp_registry_route:
  register: registry_route

- name: Log in with the route host
  ansible.builtin.debug:
    msg: "docker login -u $(oc whoami) -p $(oc whoami -t) {{ registry_route.host }}"

- name: Custom host name with your own certificate (contents, not paths)
  ibmcloud.registry.ocp_registry_route:
    hostname: registry.example.com
    tls:
      certificate: "{{ lookup('file', 'registry.example.com.crt') }}"
      key: "{{ lookup('file', 'registry.example.com.key') }}"
      ca_certificate: "{{ lookup('file', 'example-ca.crt') }}"
    wait_timeout: 300

- name: OpenShift 3.11 spelled out (the defaults pick these on 3.11 anyway)
  ibmcloud.registry.ocp_registry_route:
    namespace: default
    service: docker-registry
"""

RETURN = r"""
host:
  description:
    - The route's host, as admitted by a router. In check mode, or with O(wait=false),
      the host the route has (or will have) if known.
  returned: always
  type: str
  sample: image-registry-openshift-image-registry.mycluster-abc123.us-south.containers.appdomain.cloud
admitted:
  description: Whether a router has admitted the route's current host.
  returned: always
  type: bool
router:
  description: Name of the router that admitted the route, when the module waited for it.
  returned: always
  type: str
  sample: default
result:
  description:
    - What happened to the route, in the vocabulary of every module's per-item results.
      Not a top-level C(action), which the json callbacks overwrite with the module name.
  returned: success
  type: dict
  contains:
    namespace:
      description: Project of the route.
      type: str
    name:
      description: Name of the route.
      type: str
    action:
      description: V(created), V(updated) or V(unchanged) (in check mode, what would happen).
      type: str
  sample: {namespace: openshift-image-registry, name: image-registry, action: created}
name:
  description: Name of the route.
  returned: always
  type: str
  sample: image-registry
namespace:
  description: Project of the route.
  returned: always
  type: str
  sample: openshift-image-registry
service:
  description: The registry service the route points to.
  returned: always
  type: str
  sample: image-registry
flavour:
  description:
    - What API discovery found; it chose the defaults of O(namespace) and O(service).
    - V(openshift4) (C(image-registry) in C(openshift-image-registry)) or V(openshift3)
      (C(docker-registry) in C(default)); with V(kubernetes), which serves no Routes, the
      task fails before any write.
  returned: always
  type: str
  sample: openshift4
"""

from ansible_collections.ibmcloud.registry.plugins.module_utils.common.argspec import run_module
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import kube_argument_spec
from ansible_collections.ibmcloud.registry.plugins.module_utils.openshift.runners import run_ocp_registry_route


def argument_spec():
    return kube_argument_spec().add(
        name=dict(type="str"),
        namespace=dict(type="str"),
        service=dict(type="str"),
        target_port=dict(type="str", default="5000-tcp"),
        termination=dict(type="str", choices=["reencrypt", "passthrough"], default="reencrypt"),
        hostname=dict(type="str"),
        tls=dict(type="dict", options=dict(
            certificate=dict(type="str"),
            key=dict(type="str", no_log=True),
            ca_certificate=dict(type="str"),
            destination_ca_certificate=dict(type="str"),
        )),
        balance=dict(type="str", choices=["source", "roundrobin", "leastconn", "random"], default="source"),
        annotations=dict(type="dict", default={}),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=120),
    )


def main():
    run_module(argument_spec, run_ocp_registry_route)


if __name__ == "__main__":
    main()
