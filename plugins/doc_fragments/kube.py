# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Options every Kubernetes module of ibmcloud.registry shares, beside
    # kubernetes.core.k8s_auth_options.
    DOCUMENTATION = r"""
options:
  api_retries:
    description:
      - How many times one API request is retried after HTTP 429, a 5xx status or a
        dropped connection, with exponential backoff (honouring C(Retry-After)).
      - Other errors (401, 403, 404, 422) are not retried and fail with a message that
        names the resource and namespace.
    type: int
    default: 5
  parallelism:
    description:
      - How many write requests run at once when many namespaces need a change.
      - Reads are one LIST per resource type for the whole target set, whatever this is.
    type: int
    default: 8
attributes:
  # Every Kubernetes module supports both; a module adds what its diff shows (or, like
  # registry_pull_probe, sets its own support).
  check_mode:
    support: full
    description: Reads only; reports the same changes a real run would make.
  diff_mode:
    support: full
    description: Shows the objects that change, before and after; secret values never appear.
requirements:
  - kubernetes >= 29, < 37
  - openshift >= 0.13.2, < 0.14 (only for the C(username) / C(password) login)
notes:
  - Connection options are those of C(kubernetes.core), with the same
    C(K8S_AUTH_*) environment variables, so one C(module_defaults) entry for the
    C(group/ibmcloud.registry.kube) action group (which also extends
    C(group/kubernetes.core.k8s)) sets them for every task.
  - C(username) and C(password) (or C(K8S_AUTH_USERNAME) and C(K8S_AUTH_PASSWORD)),
    without C(api_key), log in at the OpenShift OAuth server of C(host) as
    C(oc login -u <username> -p <password>) does, and the module then uses the bearer
    token it issues (API servers do not accept basic authentication). On Red Hat OpenShift
    on IBM Cloud the username is C(apikey) and the password an IBM Cloud API key. The
    login honours C(ca_cert), C(validate_certs), C(proxy) and C(no_proxy), needs the
    C(openshift) Python package, and fails with a clear message when the server has no
    OAuth server or refuses the credentials. A C(api_key) (bearer token) always takes
    precedence.
"""
