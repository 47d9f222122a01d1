"""A small, typed REST client for the Kubernetes API.

The node agent and the tests speak plain JSON to the API server: objects stay
dicts exactly as ``kubectl get -o json`` shows them, and nothing converts them
to generated models and back. Authentication covers what kubeconfigs of the
local control plane, kind and managed clusters use: bearer tokens and client
certificates, with the cluster's CA.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3
import yaml

Object = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


class ApiError(Exception):
    """A non-2xx answer from the API server, with its Status object."""

    def __init__(self, status: int, body: Object | str, method: str, path: str) -> None:
        self.status = status
        self.body = body
        self.reason = body.get("reason", "") if isinstance(body, dict) else ""
        message = body.get("message", "") if isinstance(body, dict) else body
        super().__init__(f"{method} {path}: {status} {self.reason}: {message}")

    @property
    def message(self) -> str:
        return str(self.body.get("message", "")) if isinstance(self.body, dict) else self.body


@dataclass(frozen=True)
class Credentials:
    server: str
    token: str | None
    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    insecure: bool


def _materialise(data: str | None, path: str | None, base: Path, suffix: str) -> str | None:
    if path:
        resolved = Path(path)
        return str(resolved if resolved.is_absolute() else base / resolved)
    if data:
        with tempfile.NamedTemporaryFile(
            prefix="cronfleet-kube-", suffix=suffix, delete=False
        ) as handle:
            handle.write(base64.b64decode(data))
        return handle.name
    return None


def load_kubeconfig(path: str | Path, context: str | None = None) -> Credentials:
    """Read the current (or named) context of a kubeconfig file."""
    path = Path(path)
    config = yaml.safe_load(path.read_text())
    context_name = context or config.get("current-context")
    contexts = {item["name"]: item["context"] for item in config.get("contexts", [])}
    if context_name not in contexts:
        raise ValueError(f"kubeconfig {path} has no context {context_name!r}")
    ctx = contexts[context_name]
    clusters = {item["name"]: item["cluster"] for item in config.get("clusters", [])}
    users = {item["name"]: item.get("user", {}) for item in config.get("users", [])}
    cluster = clusters[ctx["cluster"]]
    user = users.get(ctx.get("user", ""), {})
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(user["tokenFile"]).read_text().strip()
    base = path.parent
    return Credentials(
        server=cluster["server"].rstrip("/"),
        token=token,
        ca_file=_materialise(
            cluster.get("certificate-authority-data"),
            cluster.get("certificate-authority"),
            base,
            ".crt",
        ),
        cert_file=_materialise(
            user.get("client-certificate-data"), user.get("client-certificate"), base, ".crt"
        ),
        key_file=_materialise(user.get("client-key-data"), user.get("client-key"), base, ".key"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
    )


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the REST tree."""

    group_version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        prefix = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        parts = [prefix]
        if self.namespaced and namespace:
            parts += ["namespaces", namespace]
        parts.append(self.plural)
        if name:
            parts.append(name)
        if sub:
            parts.append(sub)
        return "/".join(parts)


PODS = Resource("v1", "pods")
NODES = Resource("v1", "nodes", namespaced=False)
NAMESPACES = Resource("v1", "namespaces", namespaced=False)
SECRETS = Resource("v1", "secrets")
CONFIGMAPS = Resource("v1", "configmaps")
SERVICEACCOUNTS = Resource("v1", "serviceaccounts")
EVENTS = Resource("v1", "events")
LEASES = Resource("coordination.k8s.io/v1", "leases")
JOBS = Resource("batch/v1", "jobs")
CRONJOBS = Resource("batch/v1", "cronjobs")
SCHEDULES = Resource("cronfleet.io/v1alpha1", "schedules")
CRDS = Resource("apiextensions.k8s.io/v1", "customresourcedefinitions", namespaced=False)


class Kube:
    """Synchronous JSON client; safe to share between threads."""

    def __init__(self, credentials: Credentials, timeout: float = 30.0) -> None:
        self.credentials = credentials
        context = ssl.create_default_context(cafile=credentials.ca_file)
        if credentials.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if credentials.cert_file and credentials.key_file:
            context.load_cert_chain(credentials.cert_file, credentials.key_file)
        self._pool = urllib3.PoolManager(
            num_pools=4, maxsize=16, ssl_context=context, timeout=urllib3.Timeout(total=timeout)
        )
        self._headers = {"Accept": "application/json"}
        if credentials.token:
            self._headers["Authorization"] = f"Bearer {credentials.token}"

    @classmethod
    def from_kubeconfig(cls, path: str | Path) -> Kube:
        return cls(load_kubeconfig(path))

    def with_token(self, token: str) -> Kube:
        """The same cluster, seen as another identity (for RBAC checks)."""
        creds = Credentials(
            server=self.credentials.server,
            token=token,
            ca_file=self.credentials.ca_file,
            cert_file=None,
            key_file=None,
            insecure=self.credentials.insecure,
        )
        return Kube(creds)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, str | int | bool] | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> Any:
        url = self.credentials.server + path
        if query:
            url += "?" + urlencode({k: _query_value(v) for k, v in query.items()})
        headers = dict(self._headers)
        payload: bytes | None = None
        if body is not None:
            headers["Content-Type"] = content_type
            payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        response = self._pool.request(
            method,
            url,
            body=payload,
            headers=headers,
            timeout=urllib3.Timeout(total=timeout) if timeout else None,
            retries=False,
        )
        text = response.data.decode("utf-8", errors="replace")
        parsed: Any
        try:
            parsed = json.loads(text) if text else {}
        except json.JSONDecodeError:
            parsed = text
        if response.status >= 400:
            raise ApiError(response.status, parsed, method, path)
        return parsed

    # -- verbs -------------------------------------------------------------

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> Object:
        result: Object = self.request("GET", resource.path(namespace, name))
        return result

    def get_or_none(
        self, resource: Resource, name: str, namespace: str | None = None
    ) -> Object | None:
        try:
            return self.get(resource, name, namespace)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def listing(
        self,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Object:
        query: dict[str, str | int | bool] = {}
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        result: Object = self.request("GET", resource.path(namespace), query=query)
        return result

    def items(
        self,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Object]:
        listed = self.listing(resource, namespace, label_selector, field_selector)
        items: list[Object] = listed.get("items") or []
        return items

    def create(self, resource: Resource, body: Object, namespace: str | None = None) -> Object:
        result: Object = self.request("POST", resource.path(namespace), body)
        return result

    def replace(self, resource: Resource, body: Object, namespace: str | None = None) -> Object:
        name = body["metadata"]["name"]
        result: Object = self.request("PUT", resource.path(namespace, name), body)
        return result

    def patch(
        self,
        resource: Resource,
        name: str,
        body: Object,
        namespace: str | None = None,
        sub: str = "",
        content_type: str = MERGE_PATCH,
    ) -> Object:
        result: Object = self.request(
            "PATCH", resource.path(namespace, name, sub), body, content_type=content_type
        )
        return result

    def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        grace_period_seconds: int | None = None,
        propagation: str | None = None,
    ) -> Object | None:
        body: Object = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if propagation:
            body["propagationPolicy"] = propagation
        try:
            result: Object = self.request("DELETE", resource.path(namespace, name), body)
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        return result

    def watch(
        self,
        resource: Resource,
        resource_version: str,
        namespace: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 240,
    ) -> Iterator[Object]:
        """Stream watch events until the server closes the watch."""
        query: dict[str, str | int | bool] = {
            "watch": True,
            "resourceVersion": resource_version,
            "allowWatchBookmarks": True,
            "timeoutSeconds": timeout_seconds,
        }
        if field_selector:
            query["fieldSelector"] = field_selector
        url = (
            self.credentials.server
            + resource.path(namespace)
            + "?"
            + urlencode({k: _query_value(v) for k, v in query.items()})
        )
        response = self._pool.request(
            "GET",
            url,
            headers=self._headers,
            preload_content=False,
            timeout=urllib3.Timeout(connect=10, read=timeout_seconds + 30),
            retries=False,
        )
        try:
            if response.status >= 400:
                raise ApiError(response.status, response.data.decode(), "WATCH", resource.path())
            buffer = b""
            for chunk in response.stream(65536, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        event: Object = json.loads(line)
                        yield event
        finally:
            response.release_conn()


def _query_value(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
