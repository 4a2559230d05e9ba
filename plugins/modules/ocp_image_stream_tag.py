#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ocp_image_stream_tag
short_description: Import images from a registry into OpenShift image streams, many at once
version_added: 0.1.0
description:
  - The equivalent of C(oc tag SOURCE [project/]stream:tag --reference-policy=local
    --scheduled) for any number of images in one task - each image becomes an
    ImageStream spec tag from a C(DockerImage) with the C(Local) reference policy
    (a copy is served from the internal registry) and scheduled import (OpenShift
    re-imports it periodically, every 15 minutes by default).
  - Image streams that do not exist are created. Tags of a stream that the task
    does not name stay as they are, in order.
  - Reports C(changed) only when a spec tag differs from what is asked (unlike
    C(community.okd.openshift_import_image), which always reports a change). A
    changed tag is written without its C(generation), so OpenShift keeps the tag's
    generation and imports again only when the source (or the import mode) changed;
    O(reimport) sends C(generation) 0, which makes it import again in any case.
  - Each tag's result reports the import as OpenShift records it in the stream's
    C(status.tags) (the newest image, or the C(ImportSuccess=False) condition with its
    reason); O(wait) waits for it and fails the task when an import fails.
  - Each image stream is read with one LIST per project and written with one
    request guarded by its C(resourceVersion); streams are written in bounded
    parallel (O(parallelism)).
  - On a cluster without C(image.openshift.io) (plain Kubernetes) the task fails with
    a message that says so, before any write.
author:
  - ibmcloud.registry maintainers (@ibmcloud-registry)
options:
  namespace:
    description:
      - Project for targets that do not name one. IBM Cloud's documentation uses C(default), which IBM
        Cloud sets up with credentials for the C(icr.io) registries (imports use the
        pull secrets of the image stream's project).
    type: str
  images:
    description: The images to import.
    type: list
    elements: dict
    required: true
    suboptions:
      source:
        description:
          - Image to import, for example C(us.icr.io/mynamespace/app:1.2) or
            C(us.icr.io/mynamespace/app@sha256:...).
        type: str
        required: true
      target:
        description:
          - "Image stream tag to create, C([project/]stream[:tag]); the tag defaults to
            C(latest)."
        type: str
        required: true
      reference_policy:
        description: Overrides O(reference_policy) for this image.
        type: str
        choices: [Local, Source]
      scheduled:
        description: Overrides O(scheduled) for this image.
        type: bool
      insecure:
        description: Overrides O(insecure) for this image.
        type: bool
      import_mode:
        description: Overrides O(import_mode) for this image.
        type: str
        choices: [Legacy, PreserveOriginal]
      reimport:
        description: Overrides O(reimport) for this image.
        type: bool
  reference_policy:
    description:
      - V(Local) - pulls go through the internal registry, which serves a copy, so
        other projects need no credentials for the source registry
        (C(--reference-policy=local)). V(Source) - pulls go to the source registry.
    type: str
    choices: [Local, Source]
    default: Local
  scheduled:
    description: Import the image again periodically (C(--scheduled)).
    type: bool
    default: true
  insecure:
    description: Allow importing from a registry without valid TLS (C(--insecure)).
    type: bool
    default: false
  import_mode:
    description:
      - C(importPolicy.importMode) - V(Legacy) imports one platform's image,
        V(PreserveOriginal) the whole manifest list (OpenShift 4.12 and later). Not
        given - the field is not sent and the server default applies.
    type: str
    choices: [Legacy, PreserveOriginal]
  reimport:
    description:
      - Import the images again now, even when their spec tags are as asked - the tags
        are sent with C(generation) 0 (what C(oc import-image) does), so the task
        always reports them V(updated).
    type: bool
    default: false
  wait:
    description:
      - Wait until OpenShift has imported every tag that this task created or changed
        (or re-imported), and fail when an import failed (the spec tags stay written).
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait with O(wait).
    type: int
    default: 120
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ibmcloud.registry.kube
attributes:
  diff_mode:
    description: Shows each changed tag's source, reference policy and schedule.
notes:
  - Removing tags is not supported; use C(oc tag -d).
seealso:
  - module: ibmcloud.registry.ocp_build_secret
"""

EXAMPLES = r"""
# The guide "Setting up an image registry", section "Importing images from IBM Cloud Container Registry into the internal
# registry image stream", step 4, for several images in one task.
- name: Import images from us.icr.io into image streams in the default project
  ibmcloud.registry.ocp_image_stream_tag:
    namespace: default
    images:
      - source: us.icr.io/mynamespace/frontend:1.4
        target: frontend:1.4
      - source: us.icr.io/mynamespace/backend:2.0
        target: backend:2.0
      - source: us.icr.io/mynamespace/backend:2.0
        target: backend:latest
        scheduled: false

- name: The documented oc tag command as written, project in the target
  ibmcloud.registry.ocp_image_stream_tag:
    images:
      - source: us.icr.io/mynamespace/app:v1
        target: default/app:v1

- name: Without a local copy (pulls go to icr.io)
  ibmcloud.registry.ocp_image_stream_tag:
    namespace: team-a
    reference_policy: Source
    scheduled: false
    images:
      - {source: "icr.io/ibm/liberty:latest", target: "liberty:latest"}
"""

RETURN = r"""
results:
  description: One entry per image, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    namespace:
      description: Project of the image stream.
      type: str
    name:
      description: C(stream:tag).
      type: str
      sample: frontend:1.4
    action:
      description: V(created) (new tag), V(updated), V(unchanged) or V(failed).
      type: str
    source:
      description: The source image.
      type: str
    reference_policy:
      description: The tag's reference policy.
      type: str
    scheduled:
      description: Whether the tag is imported periodically.
      type: bool
    import:
      description:
        - The import of the tag as the stream's C(status.tags) records it - C(state)
          V(imported) (with C(image), the digest, C(reference) and C(generation)),
          V(failed) (with C(reason) and C(message) of the C(ImportSuccess=False)
          condition) or V(pending) (no result yet for the tag's current generation; in
          check mode for every tag that would be written).
      type: dict
      returned: when the stream was read or written
      sample: {state: imported, image: "sha256:4f0c...", reference: "us.icr.io/team/app@sha256:4f0c...", generation: 3}
    error:
      description: Why this image failed.
      type: str
      returned: when action is failed
counts:
  description:
    - Number of images per action. V(deleted) and V(absent) stay 0, since the module
      removes no tag.
  returned: always
  type: dict
  sample: {created: 2, updated: 0, unchanged: 1, deleted: 0, absent: 0, failed: 0}
flavour:
  description:
    - What API discovery found - V(openshift4), V(openshift3) or V(kubernetes). The image
      streams need C(image.openshift.io); a cluster that does not serve it fails the task
      before any image stream is read.
  returned: always
  type: str
"""

from ansible_collections.ibmcloud.registry.plugins.module_utils.common.argspec import run_module
from ansible_collections.ibmcloud.registry.plugins.module_utils.openshift import plan as ocp
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import kube_argument_spec
from ansible_collections.ibmcloud.registry.plugins.module_utils.openshift.runners import run_ocp_image_stream_tag


def argument_spec():
    return kube_argument_spec().add(
        namespace=dict(type="str"),
        images=dict(type="list", elements="dict", required=True, options=dict(
            source=dict(type="str", required=True),
            target=dict(type="str", required=True),
            reference_policy=dict(type="str", choices=list(ocp.REFERENCE_POLICIES)),
            scheduled=dict(type="bool"),
            insecure=dict(type="bool"),
            import_mode=dict(type="str", choices=list(ocp.IMPORT_MODES)),
            reimport=dict(type="bool"),
        )),
        reference_policy=dict(type="str", choices=list(ocp.REFERENCE_POLICIES), default="Local"),
        scheduled=dict(type="bool", default=True),
        insecure=dict(type="bool", default=False),
        import_mode=dict(type="str", choices=list(ocp.IMPORT_MODES)),
        reimport=dict(type="bool", default=False),
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=120),
    )


def main():
    run_module(argument_spec, run_ocp_image_stream_tag)


if __name__ == "__main__":
    main()
