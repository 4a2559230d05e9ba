# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The steps of the ``containerd_hosts`` module: observe, plan everything, then write.

Every option is validated and every error collected before the first write; check mode
stops after the plan.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.ibmcloud.registry.plugins.module_utils.containerd import client, config_toml, plan
from ansible_collections.ibmcloud.registry.plugins.module_utils.containerd.plan import ContainerdHostsError


def _fail(module, errors, warnings, **result):
    for warning in warnings:
        module.warn(warning)
    module.fail_json(msg="; ".join(errors), errors=errors, **result)


def _validate(params, errors):
    """Option errors that need no file; the registry declaration is normalized here."""
    for option in ("config_path", "containerd_config"):
        if not os.path.isabs(params[option]):
            errors.append("%s must be an absolute path, got %s" % (option, params[option]))
    version = None
    if params["containerd_version"]:
        version = plan.parse_version(params["containerd_version"])
        if version is None:
            errors.append("containerd_version %r is not a version such as 1.7 or 2.1.4"
                          % params["containerd_version"])
    spec = None
    if params["registry"]:
        try:
            spec = plan.normalize_spec({
                "registry": params["registry"], "state": params["state"], "server": params["server"],
                "server_settings": params["server_settings"], "hosts": params["hosts"]})
        except ContainerdHostsError as exc:
            errors.append(str(exc))
    keep = None
    if params["prune_except"] is not None:
        keep = set()
        for name in params["prune_except"]:
            try:
                keep.add(plan.registry_directory(name, "prune_except entry"))
            except ContainerdHostsError as exc:
                errors.append(str(exc))
        if spec:
            keep.add(spec["directory"])
    return version, spec, keep


def run(module):
    """Plan everything (all validation before any write), then apply unless in check mode."""
    params = module.params
    warnings, errors = [], []
    # Per-item results under "registries", not "results": in a loop, Ansible's callbacks
    # read an item's "results" as nested loop items and would hide the item's diff.
    result = {"changed": False, "pruned": [], "registries": []}
    version, spec, keep = _validate(params, errors)
    if errors:
        _fail(module, errors, warnings)
    if params["containerd_config_check"] == "set" and not config_toml.HAS_TOMLKIT:
        module.fail_json(msg=missing_required_lib("tomlkit"), exception=config_toml.TOMLKIT_IMPORT_ERROR)
    if version is None and (spec or params["containerd_config_check"] == "set"):
        version = client.containerd_version(module)

    registry_plan = None
    if spec:
        registry_plan = plan.plan_registry(spec, client.observe_registry(params["config_path"], spec), version)
        warnings.extend(registry_plan["warnings"])
        errors.extend(registry_plan["errors"])
    to_prune = plan.plan_prune(client.observe_listing(params["config_path"]), keep) if keep is not None else []
    config_plan = None
    if params["containerd_config_check"] != "none":
        try:
            config_plan = config_toml.plan_config(client.observe_file(params["containerd_config"]),
                                                  params["config_path"], params["containerd_config_check"], version)
            warnings.extend(config_plan.pop("warnings"))
        except ContainerdHostsError as exc:
            errors.append(str(exc))
    if errors:
        _fail(module, errors, warnings)

    if registry_plan:
        action = registry_plan["action"]
        result.update(path=registry_plan["path"], registry=spec["directory"], action=action,
                      mode="%04o" % registry_plan["mode"] if "mode" in registry_plan else None)
        result["registries"].append({"name": spec["directory"], "path": registry_plan["path"], "action": action})
        if action in ("created", "updated", "deleted"):
            result["changed"] = True
            result["diff"] = {"before": plan.diff_text(registry_plan["current"]),
                              "after": plan.diff_text(registry_plan.get("desired")),
                              "before_header": registry_plan["path"], "after_header": registry_plan["path"]}
    for name in to_prune:
        result["changed"] = True
        result["pruned"].append(name)
        path = os.path.join(params["config_path"], name, plan.HOSTS_FILE)
        result["registries"].append({"name": name, "path": path, "action": "deleted"})
    if config_plan is not None:
        result["containerd_config"] = dict((k, v) for k, v in config_plan.items() if k != "text")
        result["config_path_ok"] = config_plan["ok"] or (config_plan["changed"] and not module.check_mode)
        result["changed"] = result["changed"] or config_plan["changed"]

    if not module.check_mode:
        try:
            _apply(module, params, registry_plan, to_prune, config_plan, result)
        except (OSError, IOError) as exc:
            module.fail_json(msg="writing %s failed: %s" % (exc.filename or params["config_path"],
                                                            exc.strerror or exc), **result)
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


def _apply(module, params, registry_plan, to_prune, config_plan, result):
    backup = params["backup"]
    if registry_plan and registry_plan["action"] == "deleted":
        if registry_plan["exists"] and backup:
            result["backup_file"] = module.backup_local(registry_plan["path"])
        client.remove_registry(registry_plan["directory"])
    elif registry_plan and registry_plan["action"] in ("created", "updated"):
        path = registry_plan["path"]
        if registry_plan["content_changed"]:
            if backup and registry_plan["exists"]:
                result["backup_file"] = module.backup_local(path)
            client.write_atomically(module, path, registry_plan["text"], registry_plan["mode"])
        elif registry_plan["mode_changed"]:
            client.set_mode(module, path, registry_plan["mode"])
        if registry_plan["marker_missing"]:
            client.write_marker(module, registry_plan["directory"])
    for name in to_prune:
        client.remove_registry(os.path.join(params["config_path"], name))
    if config_plan is not None and config_plan["changed"]:
        path = config_plan["path"]
        if config_plan["exists"] and backup:
            result["containerd_config_backup_file"] = module.backup_local(path)
        mode = client.observe_file(path)["mode"] if config_plan["exists"] else plan.MODE_PLAIN
        client.write_atomically(module, path, config_plan["text"], mode)
