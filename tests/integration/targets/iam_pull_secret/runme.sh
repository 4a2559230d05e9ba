#!/usr/bin/env bash
# ansible-test would run a role target through a play with `roles: [<target name>]`, and
# inside this collection that name is the collection's own role: this target's tasks run
# through run.yml instead, with the other targets (setup_audit, setup_iam) as roles.
set -eu
cd "$(dirname "$0")"
ANSIBLE_ROLES_PATH=.. exec ansible-playbook run.yml -i "${INVENTORY_PATH}" -e @../../integration_config.yml "$@"
