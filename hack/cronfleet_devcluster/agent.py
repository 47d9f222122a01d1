"""A local node agent: the kubelet of the local control plane.

It registers one Ready Node and keeps its lease fresh, binds pending pods to
it (there is no scheduler), and runs each pod's containers as local
processes. Images are mapped to programs on this machine (see
``cronfleet_devcluster.images``); an image it cannot run fails to pull with a
message that says which images it can run. Pod and container status are
reported through ``pods/status`` the way the kubelet reports them, so the
Job, CronJob and garbage-collector controllers see real pod lifecycles.

This is test and demo infrastructure, not part of the product.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cronfleet_devcluster.images import ImageCatalogue, UnknownImageError
from cronfleet_devcluster.kube import (
    CONFIGMAPS,
    EVENTS,
    LEASES,
    NODES,
    PODS,
    SECRETS,
    SERVICEACCOUNTS,
    STRATEGIC_PATCH,
    ApiError,
    Kube,
    Object,
)

log = logging.getLogger("cronfleet.node-agent")

HOST_IP = "127.0.0.1"
LEASE_SECONDS = 40
HEARTBEAT_SECONDS = 10
DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
MAX_TERMINATION_MESSAGE = 4096
FALLBACK_LOG_LINES = 80


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ContainerConfigError(Exception):
    """A container cannot start because its configuration does not resolve."""


# -- environment, as the kubelet resolves it -----------------------------------

_VAR_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Expand ``$(VAR)`` like the kubelet: unknown references stay as written, ``$$`` escapes."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR_REFERENCE.sub(replace, text)


def field_value(pod: Object, path: str) -> str:
    metadata = pod.get("metadata", {})
    spec = pod.get("spec", {})
    simple = {
        "metadata.name": metadata.get("name", ""),
        "metadata.namespace": metadata.get("namespace", ""),
        "metadata.uid": metadata.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": HOST_IP,
        "status.podIP": HOST_IP,
        "status.hostIPs": HOST_IP,
        "status.podIPs": HOST_IP,
    }
    if path in simple:
        return str(simple[path])
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str(metadata.get(match.group(1), {}).get(match.group(2), ""))
    raise ContainerConfigError(f"unsupported fieldRef {path!r}")


class EnvResolver:
    """Resolves env and envFrom against Secrets and ConfigMaps of the pod's namespace."""

    def __init__(self, kube: Kube, pod: Object) -> None:
        self.kube = kube
        self.pod = pod
        self.namespace = pod["metadata"]["namespace"]
        self._cache: dict[tuple[str, str], Object | None] = {}

    def _source(self, kind: str, name: str) -> Object | None:
        key = (kind, name)
        if key not in self._cache:
            resource = SECRETS if kind == "secret" else CONFIGMAPS
            self._cache[key] = self.kube.get_or_none(resource, name, self.namespace)
        return self._cache[key]

    def _data(self, kind: str, name: str) -> dict[str, str] | None:
        source = self._source(kind, name)
        if source is None:
            return None
        if kind == "secret":
            return {
                key: base64.b64decode(value).decode("utf-8", errors="replace")
                for key, value in (source.get("data") or {}).items()
            }
        data = dict(source.get("data") or {})
        return {str(key): str(value) for key, value in data.items()}

    def resolve(self, container: Object) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            for kind, ref_key in (("configmap", "configMapRef"), ("secret", "secretRef")):
                ref = source.get(ref_key)
                if not ref:
                    continue
                data = self._data(kind, ref["name"])
                if data is None:
                    if ref.get("optional"):
                        continue
                    noun = "secret" if kind == "secret" else "configmap"
                    raise ContainerConfigError(f'{noun} "{ref["name"]}" not found')
                for key, value in data.items():
                    env[prefix + key] = value
        for item in container.get("env") or []:
            name = item["name"]
            if "valueFrom" not in item:
                env[name] = expand(item.get("value", ""), env)
                continue
            value_from = item["valueFrom"]
            if "fieldRef" in value_from:
                env[name] = field_value(self.pod, value_from["fieldRef"]["fieldPath"])
            elif "resourceFieldRef" in value_from:
                env[name] = "0"
            else:
                for kind, ref_key in (("configmap", "configMapKeyRef"), ("secret", "secretKeyRef")):
                    ref = value_from.get(ref_key)
                    if not ref:
                        continue
                    data = self._data(kind, ref["name"])
                    noun = "secret" if kind == "secret" else "configmap"
                    if data is None:
                        if ref.get("optional"):
                            break
                        raise ContainerConfigError(f'{noun} "{ref["name"]}" not found')
                    if ref["key"] not in data:
                        if ref.get("optional"):
                            break
                        raise ContainerConfigError(
                            f"couldn't find key {ref['key']} in {noun.capitalize()} "
                            f"{self.namespace}/{ref['name']}"
                        )
                    env[name] = data[ref["key"]]
        return env


# -- running one pod ---------------------------------------------------------------


@dataclass
class ContainerRun:
    name: str
    image: str
    started_at: str = ""
    restart_count: int = 0
    process: subprocess.Popen[bytes] | None = None
    state: Object = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Object = field(default_factory=dict)


class PodRunner(threading.Thread):
    """Runs one pod's containers and reports their lifecycle until the pod ends."""

    def __init__(self, agent: NodeAgent, pod: Object) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.agent = agent
        self.kube = agent.kube
        self.pod = pod
        self.namespace: str = meta["namespace"]
        self.pod_name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.stop_requested = threading.Event()
        self.grace_seconds: float = 30.0
        self.directory = agent.state_dir / "pods" / f"{self.namespace}_{self.pod_name}_{self.uid}"
        self.started_at = now_iso()
        self.containers = [
            ContainerRun(name=c["name"], image=c.get("image", ""))
            for c in pod["spec"].get("containers", [])
        ]
        self.phase = "Pending"

    # The pod's deletion (graceful) or disappearance stops it.
    def request_stop(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self.stop_requested.set()

    def run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("pod %s/%s: agent error", self.namespace, self.pod_name)
        finally:
            self.agent.forget(self.uid)

    # -- status reporting ---------------------------------------------------------

    def _container_status(self, run: ContainerRun) -> Object:
        status: Object = {
            "name": run.name,
            "image": run.image,
            "imageID": f"cronfleet-local://{run.image}",
            "ready": "running" in run.state,
            "started": "running" in run.state,
            "restartCount": run.restart_count,
            "state": run.state,
            "lastState": run.last_state,
        }
        if run.process is not None:
            status["containerID"] = f"cronfleet-local://{run.process.pid}"
        return status

    def report(self) -> None:
        all_running = all("running" in run.state for run in self.containers)
        terminal = self.phase in ("Succeeded", "Failed")
        ready = "True" if all_running and not terminal else "False"
        ready_reason = "PodCompleted" if terminal else ("" if all_running else "ContainersNotReady")
        now = now_iso()

        def condition(kind: str, status: str, reason: str = "") -> Object:
            item: Object = {
                "type": kind,
                "status": status,
                "lastProbeTime": None,
                "lastTransitionTime": now,
            }
            if reason:
                item["reason"] = reason
            return item

        status: Object = {
            "phase": self.phase,
            "hostIP": HOST_IP,
            "hostIPs": [{"ip": HOST_IP}],
            "podIP": HOST_IP,
            "podIPs": [{"ip": HOST_IP}],
            "startTime": self.started_at,
            "conditions": [
                condition("PodReadyToStartContainers", "False" if terminal else "True"),
                condition("Initialized", "True", "PodCompleted" if terminal else ""),
                condition("ContainersReady", ready, ready_reason),
                condition("Ready", ready, ready_reason),
                condition("PodScheduled", "True"),
            ],
            "containerStatuses": [self._container_status(run) for run in self.containers],
        }
        for attempt in range(5):
            try:
                self.kube.patch(
                    PODS,
                    self.pod_name,
                    {"status": status},
                    self.namespace,
                    sub="status",
                    content_type=STRATEGIC_PATCH,
                )
                return
            except ApiError as error:
                if error.status == 404:
                    return
                if attempt == 4:
                    log.warning(
                        "pod %s/%s: status not written: %s", self.namespace, self.pod_name, error
                    )
                time.sleep(0.2 * (attempt + 1))

    def event(self, kind: str, reason: str, message: str) -> None:
        self.agent.event(self.pod, kind, reason, message)

    # -- lifecycle ------------------------------------------------------------------

    def _run(self) -> None:
        spec = self.pod["spec"]
        restart_policy = spec.get("restartPolicy", "Always")
        deadline_seconds = spec.get("activeDeadlineSeconds")
        deadline = time.monotonic() + deadline_seconds if deadline_seconds else None
        self.directory.mkdir(parents=True, exist_ok=True)

        # Pull: every image must map to a local program before anything runs.
        argv_by_container: dict[str, list[str]] = {}
        for container in spec.get("containers", []):
            try:
                argv_by_container[container["name"]] = self.agent.images.argv(container)
            except UnknownImageError as error:
                run = self._run_for(container["name"])
                run.state = {"waiting": {"reason": "ErrImagePull", "message": str(error)}}
                self.report()
                self.event("Warning", "Failed", f'Failed to pull image "{run.image}": {error}')
                self.stop_requested.wait()
                self._finish_deletion()
                return

        # Configuration: missing Secrets/ConfigMaps are retried, like the kubelet does.
        env_by_container: dict[str, dict[str, str]] = {}
        while not env_by_container:
            try:
                resolver = EnvResolver(self.kube, self.pod)
                env_by_container = {
                    c["name"]: resolver.resolve(c) for c in spec.get("containers", [])
                }
            except ContainerConfigError as error:
                for run in self.containers:
                    run.state = {
                        "waiting": {"reason": "CreateContainerConfigError", "message": str(error)}
                    }
                self.report()
                self.event("Warning", "Failed", f"Error: {error}")
                if self.stop_requested.wait(5):
                    self._finish_deletion()
                    return

        containers = {c["name"]: c for c in spec.get("containers", [])}
        for run in self.containers:
            self._start(
                run, containers[run.name], argv_by_container[run.name], env_by_container[run.name]
            )
        self.phase = "Running"
        self.report()

        while True:
            if self.stop_requested.is_set():
                self._kill_all(self.grace_seconds)
                self._settle_phase(restart_policy, killed=True)
                self.report()
                self._finish_deletion()
                return
            if deadline is not None and time.monotonic() > deadline:
                self._kill_all(float(spec.get("terminationGracePeriodSeconds", 30)))
                self.phase = "Failed"
                self.report()
                self.kube.patch(
                    PODS,
                    self.pod_name,
                    {
                        "status": {
                            "reason": "DeadlineExceeded",
                            "message": f"Pod was active on the node longer than the specified "
                            f"deadline ({deadline_seconds}s)",
                        }
                    },
                    self.namespace,
                    sub="status",
                    content_type=STRATEGIC_PATCH,
                )
                return
            changed = False
            for run in self.containers:
                if run.process is None or run.process.poll() is None:
                    continue
                self._record_exit(run, containers[run.name])
                changed = True
                code = run.state["terminated"]["exitCode"]
                if restart_policy == "Always" or (restart_policy == "OnFailure" and code != 0):
                    run.last_state = run.state
                    run.restart_count += 1
                    # A short fixed back-off stands in for the kubelet's CrashLoopBackOff.
                    if self.stop_requested.wait(1.0):
                        break
                    self._start(
                        run,
                        containers[run.name],
                        argv_by_container[run.name],
                        env_by_container[run.name],
                    )
            if changed:
                self._settle_phase(restart_policy, killed=False)
                self.report()
                if self.phase in ("Succeeded", "Failed"):
                    self.stop_requested.wait()
                    self._finish_deletion()
                    return
            self.stop_requested.wait(0.1)

    def _run_for(self, name: str) -> ContainerRun:
        return next(run for run in self.containers if run.name == name)

    def _settle_phase(self, restart_policy: str, killed: bool) -> None:
        if not killed:
            still_running = any("terminated" not in run.state for run in self.containers)
            if still_running or restart_policy == "Always":
                return
        codes = [run.state.get("terminated", {}).get("exitCode", 137) for run in self.containers]
        self.phase = "Succeeded" if all(code == 0 for code in codes) else "Failed"

    def _message_file(self, run: ContainerRun) -> Path:
        return self.directory / f"{run.name}.termination-log"

    def _start(
        self, run: ContainerRun, container: Object, argv: list[str], env: dict[str, str]
    ) -> None:
        message_path = container.get("terminationMessagePath", DEFAULT_TERMINATION_MESSAGE_PATH)
        local_message = self._message_file(run)
        local_message.write_text("")
        full_env = self.agent.base_env(self.pod)
        kubeconfig = self.agent.service_account_kubeconfig(self.pod, self.directory)
        if kubeconfig is not None:
            full_env["KUBECONFIG"] = str(kubeconfig)
        # The runner's contract names its message file through this variable;
        # the agent points it (and any literal use of the path) at a per-pod file.
        full_env["CRONFLEET_TERMINATION_MESSAGE_PATH"] = str(local_message)
        for key, value in env.items():
            full_env[key] = str(local_message) if value == message_path else value
        argv = [expand(arg, env).replace(message_path, str(local_message)) for arg in argv]
        workdir = container.get("workingDir")
        cwd = Path(workdir) if workdir and Path(workdir).is_dir() else self.directory
        stdout = (self.directory / f"{run.name}.log").open("ab")
        try:
            run.process = subprocess.Popen(
                argv,
                env=full_env,
                cwd=cwd,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as error:
            run.process = None
            run.state = {
                "terminated": {
                    "exitCode": 128,
                    "reason": "StartError",
                    "message": str(error),
                    "startedAt": now_iso(),
                    "finishedAt": now_iso(),
                }
            }
            return
        finally:
            stdout.close()
        run.started_at = now_iso()
        run.state = {"running": {"startedAt": run.started_at}}
        self.event("Normal", "Started", f"Started container {run.name}")

    def _record_exit(self, run: ContainerRun, container: Object) -> None:
        assert run.process is not None
        code = run.process.returncode
        if code < 0:  # killed by a signal: report it the way container runtimes do
            code = 128 - code
        message = self._message_file(run).read_text(errors="replace")[:MAX_TERMINATION_MESSAGE]
        policy = container.get("terminationMessagePolicy", "File")
        if not message.strip() and code != 0 and policy == "FallbackToLogsOnError":
            lines = (self.directory / f"{run.name}.log").read_text(errors="replace").splitlines()
            message = "\n".join(lines[-FALLBACK_LOG_LINES:])[-MAX_TERMINATION_MESSAGE:]
        terminated: Object = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": run.started_at,
            "finishedAt": now_iso(),
            "containerID": f"cronfleet-local://{run.process.pid}",
        }
        if message:
            terminated["message"] = message
        run.state = {"terminated": terminated}

    def _kill_all(self, grace: float) -> None:
        running = [
            run for run in self.containers if run.process is not None and run.process.poll() is None
        ]
        for run in running:
            _signal_group(run.process, signal.SIGTERM)
        end = time.monotonic() + grace
        while time.monotonic() < end and any(
            r.process and r.process.poll() is None for r in running
        ):
            time.sleep(0.05)
        for run in running:
            if run.process and run.process.poll() is None:
                _signal_group(run.process, signal.SIGKILL)
                run.process.wait()
        containers = {c["name"]: c for c in self.pod["spec"].get("containers", [])}
        for run in running:
            self._record_exit(run, containers[run.name])

    def _finish_deletion(self) -> None:
        """Confirm a graceful deletion, as the kubelet does once containers are gone."""
        current = self.kube.get_or_none(PODS, self.pod_name, self.namespace)
        if (
            current
            and current["metadata"].get("uid") == self.uid
            and current["metadata"].get("deletionTimestamp")
        ):
            self.kube.delete(PODS, self.pod_name, self.namespace, grace_period_seconds=0)
        shutil.rmtree(self.directory, ignore_errors=True)


def _signal_group(process: subprocess.Popen[bytes] | None, sig: signal.Signals) -> None:
    if process is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


# -- the agent ----------------------------------------------------------------------


class NodeAgent:
    def __init__(
        self, kube: Kube, node_name: str, state_dir: Path, api_port: int, images: ImageCatalogue
    ) -> None:
        self.kube = kube
        self.node_name = node_name
        self.state_dir = state_dir
        self.api_port = api_port
        self.images = images
        self.runners: dict[str, PodRunner] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    # -- node registration and heartbeat -------------------------------------------

    def node_status(self) -> Object:
        now = now_iso()
        capacity = {"cpu": "8", "memory": "32Gi", "pods": "500", "ephemeral-storage": "100Gi"}

        def condition(kind: str, status: str, reason: str, message: str) -> Object:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }

        return {
            "capacity": capacity,
            "allocatable": capacity,
            "addresses": [
                {"type": "InternalIP", "address": HOST_IP},
                {"type": "Hostname", "address": self.node_name},
            ],
            "conditions": [
                condition("Ready", "True", "KubeletReady", "cronfleet local node agent is ready"),
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", ""),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", ""),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", ""),
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "v1.34.4",
                "kubeProxyVersion": "",
                "containerRuntimeVersion": "cronfleet-local://1",
                "osImage": "local processes",
                "kernelVersion": os.uname().release,
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }

    def register(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "cronfleet.io/local-node-agent": "true",
                },
            },
        }
        try:
            self.kube.create(NODES, node)
        except ApiError as error:
            if error.status != 409:
                raise
        self.kube.patch(
            NODES,
            self.node_name,
            {"status": self.node_status()},
            sub="status",
            content_type=STRATEGIC_PATCH,
        )
        self.renew_lease()

    def renew_lease(self) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.node_name, "namespace": "kube-node-lease"},
            "spec": {
                "holderIdentity": self.node_name,
                "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": now,
            },
        }
        try:
            self.kube.patch(LEASES, self.node_name, {"spec": lease["spec"]}, "kube-node-lease")
        except ApiError as error:
            if error.status != 404:
                raise
            self.kube.create(LEASES, lease, "kube-node-lease")

    def heartbeat_loop(self) -> None:
        beats = 0
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            beats += 1
            try:
                self.renew_lease()
                if beats % 4 == 0:
                    self.kube.patch(
                        NODES,
                        self.node_name,
                        {"status": self.node_status()},
                        sub="status",
                        content_type=STRATEGIC_PATCH,
                    )
            except Exception as error:
                log.warning("heartbeat failed: %s", error)

    # -- pods ------------------------------------------------------------------------

    def base_env(self, pod: Object) -> dict[str, str]:
        """What a container finds in its environment before the pod's own env."""
        venv_bin = str(Path(sys.executable).parent)
        return {
            "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.state_dir / "home"),
            "HOSTNAME": pod["metadata"]["name"],
            "KUBERNETES_SERVICE_HOST": HOST_IP,
            "KUBERNETES_SERVICE_PORT": str(self.api_port),
            "PYTHONUNBUFFERED": "1",
        }

    def service_account_kubeconfig(self, pod: Object, directory: Path) -> Path | None:
        """The pod's ServiceAccount credentials, as the kubelet would mount them.

        A real kubelet projects a token file at a fixed path; local processes
        cannot share that path, so the agent requests the same bound token and
        hands it over as a kubeconfig in KUBECONFIG, which every Kubernetes
        client (kopf's included) reads when no in-cluster token is mounted.
        """
        spec = pod["spec"]
        if spec.get("automountServiceAccountToken") is False:
            return None
        meta = pod["metadata"]
        account = spec.get("serviceAccountName") or "default"
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": 86400,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
            },
        }
        try:
            issued = self.kube.request(
                "POST", SERVICEACCOUNTS.path(meta["namespace"], account, "token"), request
            )
        except ApiError as error:
            log.warning("no token for %s/%s: %s", meta["namespace"], account, error)
            return None
        path = directory / "serviceaccount.kubeconfig"
        credentials = self.kube.credentials
        cluster: Object = {"server": credentials.server}
        if credentials.ca_file:
            cluster["certificate-authority"] = credentials.ca_file
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "local", "cluster": cluster}],
                    "users": [{"name": account, "user": {"token": issued["status"]["token"]}}],
                    "contexts": [
                        {
                            "name": "local",
                            "context": {
                                "cluster": "local",
                                "user": account,
                                "namespace": meta["namespace"],
                            },
                        }
                    ],
                    "current-context": "local",
                }
            )
        )
        return path

    def forget(self, uid: str) -> None:
        with self.lock:
            self.runners.pop(uid, None)

    def event(self, pod: Object, kind: str, reason: str, message: str) -> None:
        meta = pod["metadata"]
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "kind": "Pod",
                "apiVersion": "v1",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "kubelet", "host": self.node_name},
            "firstTimestamp": now_iso(),
            "lastTimestamp": now_iso(),
            "count": 1,
        }
        try:
            self.kube.create(EVENTS, body, meta["namespace"])
        except ApiError as error:
            log.debug("event not written: %s", error)

    def bind(self, pod: Object) -> None:
        meta = pod["metadata"]
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }
        try:
            self.kube.request(
                "POST", PODS.path(meta["namespace"], meta["name"], "binding"), binding
            )
            self.event(
                pod,
                "Normal",
                "Scheduled",
                f"Successfully assigned {meta['namespace']}/{meta['name']} to {self.node_name}",
            )
        except ApiError as error:
            if error.status not in (404, 409):
                log.warning("bind %s/%s failed: %s", meta["namespace"], meta["name"], error)

    def handle(self, kind: str, pod: Object) -> None:
        meta = pod["metadata"]
        spec = pod.get("spec", {})
        uid = meta["uid"]
        node = spec.get("nodeName")
        with self.lock:
            runner = self.runners.get(uid)
        if kind == "DELETED":
            if runner:
                runner.request_stop(0)
            return
        if not node:
            if (
                not meta.get("deletionTimestamp")
                and spec.get("schedulerName", "default-scheduler") == "default-scheduler"
            ):
                self.bind(pod)
            return
        if node != self.node_name:
            return
        terminal = pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
        if meta.get("deletionTimestamp"):
            if runner:
                runner.request_stop(float(meta.get("deletionGracePeriodSeconds") or 0))
            elif not terminal or meta.get("deletionTimestamp"):
                # Nothing runs for it here (never started, or already ended).
                self.kube.delete(PODS, meta["name"], meta["namespace"], grace_period_seconds=0)
            return
        if runner or terminal:
            return
        if pod.get("status", {}).get("containerStatuses"):
            # Started by an earlier agent whose processes are gone: like a node
            # that rebooted, report the containers as lost rather than rerun them.
            self._report_lost(pod)
            return
        runner = PodRunner(self, pod)
        with self.lock:
            self.runners[uid] = runner
        runner.start()

    def _report_lost(self, pod: Object) -> None:
        meta = pod["metadata"]
        statuses = []
        for status in pod["status"]["containerStatuses"]:
            statuses.append(
                {
                    **status,
                    "ready": False,
                    "started": False,
                    "state": {
                        "terminated": {
                            "exitCode": 137,
                            "reason": "ContainerStatusUnknown",
                            "message": "The container could not be located when the "
                            "node agent restarted",
                            "finishedAt": now_iso(),
                        }
                    },
                }
            )
        self.kube.patch(
            PODS,
            meta["name"],
            {"status": {"phase": "Failed", "containerStatuses": statuses}},
            meta["namespace"],
            sub="status",
            content_type=STRATEGIC_PATCH,
        )

    def watch_pods(self) -> None:
        resource_version = ""
        while not self.stopping.is_set():
            try:
                if not resource_version:
                    listed = self.kube.listing(PODS)
                    for pod in listed.get("items", []):
                        self.handle("ADDED", pod)
                    resource_version = listed["metadata"]["resourceVersion"]
                for event in self.kube.watch(PODS, resource_version):
                    if event["type"] == "ERROR":
                        resource_version = ""
                        break
                    obj = event["object"]
                    resource_version = obj["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        self.handle(event["type"], obj)
            except Exception as error:
                if self.stopping.is_set():
                    return
                log.warning("pod watch interrupted (%s); listing again", error)
                resource_version = ""
                time.sleep(1)

    def shutdown(self, *_: Any) -> None:
        self.stopping.set()
        with self.lock:
            runners = list(self.runners.values())
        for runner in runners:
            for run in runner.containers:
                _signal_group(run.process, signal.SIGKILL)
        sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="cronfleet's local node agent")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node-name", required=True)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--api-port", required=True, type=int)
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args.state_dir.mkdir(parents=True, exist_ok=True)
    (args.state_dir / "home").mkdir(exist_ok=True)
    agent = NodeAgent(
        Kube.from_kubeconfig(args.kubeconfig),
        args.node_name,
        args.state_dir,
        args.api_port,
        ImageCatalogue.default(),
    )
    signal.signal(signal.SIGTERM, agent.shutdown)
    agent.register()
    threading.Thread(target=agent.heartbeat_loop, name="heartbeat", daemon=True).start()
    if args.ready_file:
        args.ready_file.write_text("ready\n")
    log.info("node %s registered; watching pods", args.node_name)
    agent.watch_pods()


if __name__ == "__main__":
    main()
