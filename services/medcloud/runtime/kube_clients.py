"""Kubernetes API clients for member clusters, one per kubeconfig, made on first use and kept.

Made in the caller's worker thread (loading a kubeconfig may run an exec credential plugin),
once per cluster even under concurrent first calls, and with one retry of a refused connection
instead of urllib3's three: a cluster that is down must be reported quickly."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException


class KubeconfigUnusable(Exception):
    def __init__(self, cluster: str, path: Path, cause: Exception) -> None:
        super().__init__(f"kubeconfig {path} is unusable: {cause}")
        self.cluster = cluster


class KubeClients:
    def __init__(
        self,
        kubeconfigs: Mapping[str, Path],
        given: Mapping[str, client.ApiClient] | None = None,
    ) -> None:
        """`kubeconfigs` by cluster name; `given` clients (tests) are used as they are and never
        closed here."""
        self._kubeconfigs = dict(kubeconfigs)
        self._clients: dict[str, client.ApiClient] = dict(given or {})
        self._given = set(self._clients)
        self._lock = threading.Lock()
        self._cluster_locks: dict[str, threading.Lock] = {}

    @property
    def clusters(self) -> tuple[str, ...]:
        return tuple(sorted({*self._kubeconfigs, *self._clients}))

    def knows(self, cluster: str) -> bool:
        return cluster in self._kubeconfigs or cluster in self._clients

    def get(self, cluster: str) -> client.ApiClient:
        """The cluster's client; KubeconfigUnusable when its kubeconfig cannot be loaded."""
        with self._lock:
            api = self._clients.get(cluster)
            lock = self._cluster_locks.setdefault(cluster, threading.Lock())
        if api is not None:
            return api
        with lock:
            with self._lock:
                api = self._clients.get(cluster)
            if api is not None:
                return api
            path = self._kubeconfigs[cluster]
            configuration = client.Configuration()
            try:
                config.load_kube_config(
                    config_file=str(path),
                    client_configuration=configuration,
                    persist_config=False,
                )
            except (ConfigException, OSError, ValueError, TypeError, KeyError) as error:
                raise KubeconfigUnusable(cluster, path, error) from None
            configuration.retries = 1
            api = client.ApiClient(configuration)
            with self._lock:
                self._clients[cluster] = api
            return api

    def close(self) -> None:
        """Closes the clients made here."""
        with self._lock:
            made = {n: c for n, c in self._clients.items() if n not in self._given}
            for name in made:
                del self._clients[name]
        for api in made.values():
            api.close()
