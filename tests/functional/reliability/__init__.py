"""Helpers of the reliability and security suite (docs/reliability.md): a fault-injecting
proxy in front of the API server, the private cluster the suite runs on, ServiceAccount
kubeconfigs and the RBAC manifests of docs/rbac/."""
