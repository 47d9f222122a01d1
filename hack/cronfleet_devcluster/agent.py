"""A local node agent: the kubelet of the local control plane.

It registers one Ready Node and keeps its lease fresh, binds pending pods to
it (there is no scheduler), and runs each pod's containers as local
processes. Images are mapped to programs on this machine (see
``cronfleet_devcluster.images``); an image it cannot run fails to pull with a
message that says which images it can run. Pod and container status are
reported through ``pods/status`` the way the kubelet reports them, so the
Job, CronJob and garbage-collector controllers see real pod lifecycles.

Where a test can tell, it follows the kubelet's rules: the grace period and
SIGTERM-then-SIGKILL of ``killContainer`` (PID 1 ignores signals it has no
handler for), the crash and image-pull back-offs, a pod address of its own
(``cronfleet_devcluster.podips``) and the kubelet's log endpoint
(``cronfleet_devcluster.agentlogs``).

This is test and demo infrastructure, not part of the product.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import logging
import os
import queue
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

from cronfleet_devcluster.agentlogs import (
    InstanceLog,
    LogServer,
    LogServerTls,
    LogSource,
    keep_last_instances,
)
from cronfleet_devcluster.backoff import Backoff, format_duration
from cronfleet_devcluster.images import ImageCatalogue, UnknownImageError, repository_of
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
from cronfleet_devcluster.podips import DEFAULT_POD_RANGE, PodAddresses, PodRangeError

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


def field_value(pod: Object, path: str, pod_ip: str) -> str:
    """A downward-API ``fieldRef``; ``pod_ip`` is the address the agent gave the pod."""
    metadata = pod.get("metadata", {})
    spec = pod.get("spec", {})
    simple = {
        "metadata.name": metadata.get("name", ""),
        "metadata.namespace": metadata.get("namespace", ""),
        "metadata.uid": metadata.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": HOST_IP,
        "status.podIP": pod_ip,
        "status.hostIPs": HOST_IP,
        "status.podIPs": pod_ip,
    }
    if path in simple:
        return str(simple[path])
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str(metadata.get(match.group(1), {}).get(match.group(2), ""))
    raise ContainerConfigError(f"unsupported fieldRef {path!r}")


class EnvResolver:
    """Resolves env and envFrom against Secrets and ConfigMaps of the pod's namespace."""

    def __init__(self, kube: Kube, pod: Object, pod_ip: str) -> None:
        self.kube = kube
        self.pod = pod
        self.pod_ip = pod_ip
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
                env[name] = field_value(self.pod, value_from["fieldRef"]["fieldPath"], self.pod_ip)
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

# The kubelet never waits less than this for a container to stop
# (kuberuntime's minimumGracePeriodInSeconds), even for a grace of 0.
MINIMUM_GRACE_SECONDS = 2.0
DEFAULT_GRACE_SECONDS = 30.0
# The pod worker retries a sync that failed (a back-off, a pull or
# configuration error) after the kubelet's backOffPeriod.
SYNC_RETRY_SECONDS = 10.0
SIGTERM_BIT = 1 << (signal.SIGTERM - 1)


def grace_period_seconds(pod: Object) -> float:
    """How long the kubelet lets a pod's containers stop before SIGKILL.

    A deletion's grace period (``DELETE`` with ``gracePeriodSeconds``, copied
    to ``metadata.deletionGracePeriodSeconds``) wins over the pod's
    ``terminationGracePeriodSeconds`` (default 30 s); never under 2 s.
    """
    deletion = pod.get("metadata", {}).get("deletionGracePeriodSeconds")
    spec_grace = pod.get("spec", {}).get("terminationGracePeriodSeconds")
    if deletion is not None:
        grace = float(deletion)
    elif spec_grace is not None:
        grace = float(spec_grace)
    else:
        grace = DEFAULT_GRACE_SECONDS
    return max(grace, MINIMUM_GRACE_SECONDS)


def catches_sigterm(proc_status: str) -> bool:
    """Whether a process has a SIGTERM handler, from the ``SigCgt`` mask of /proc/PID/status.

    A container's main process is PID 1 of its PID namespace, and the kernel
    drops any signal sent to such an init process that it has no handler for:
    a program that leaves SIGTERM at its default (``sleep``, a shell without
    a trap) ignores the kubelet's SIGTERM and is killed after the grace
    period, with 137. The agent runs processes in the host's namespace, so it
    applies the same rule itself.
    """
    for line in proc_status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split(":", 1)[1].strip(), 16) & SIGTERM_BIT)
    return False


def pod_reference(pod: Object) -> str:
    """How the kubelet names a pod in its messages (``format.Pod``): name_namespace(uid)."""
    meta = pod["metadata"]
    return f"{meta['name']}_{meta['namespace']}({meta['uid']})"


def unknown_image(images: ImageCatalogue, image: str) -> UnknownImageError:
    """The catalogue's own error for an image it has no program for."""
    try:
        images.argv({"image": image, "command": ["true"]})
    except UnknownImageError as error:
        return error
    return UnknownImageError(f"image {image!r} cannot run on the cronfleet local node agent")


def should_restart(restart_policy: str, exit_code: int) -> bool:
    return restart_policy == "Always" or (restart_policy == "OnFailure" and exit_code != 0)


@dataclass
class ContainerRun:
    name: str
    image: str
    started_at: str = ""
    restart_count: int = 0
    instances: int = 0
    process: subprocess.Popen[bytes] | None = None
    container_id: str = ""
    log: InstanceLog | None = None
    # Monotonic time the last instance finished: where the crash back-off counts from.
    finished_at: float = 0.0
    state: Object = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Object = field(default_factory=dict)

    @property
    def exited(self) -> bool:
        return self.instances > 0 and (self.process is None or self.process.poll() is not None)

    def wait(self, reason: str, message: str) -> None:
        """Waiting again: the instance that ended becomes the last termination state."""
        if "terminated" in self.state:
            self.last_state = self.state
        self.state = {"waiting": {"reason": reason, "message": message}}


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
        self.grace_deadline: float | None = None
        self.directory = agent.state_dir / "pods" / f"{self.namespace}_{self.pod_name}_{self.uid}"
        self.started_at = now_iso()
        self.pod_ip = agent.addresses.allocate(self.uid)
        self.containers = [
            ContainerRun(name=c["name"], image=c.get("image", ""))
            for c in pod["spec"].get("containers", [])
        ]
        self.specs = {c["name"]: c for c in pod["spec"].get("containers", [])}
        self.restart_backoff = Backoff()
        self.pull_backoff = Backoff()
        self.pull_errors: dict[str, str] = {}
        self.instance_logs: dict[str, InstanceLog] = {}
        self.phase = "Pending"

    # The pod's deletion (graceful) or disappearance stops it; a second,
    # shorter deletion shortens the wait, as it does on a kubelet.
    def request_stop(self, grace_seconds: float) -> None:
        deadline = time.monotonic() + max(grace_seconds, MINIMUM_GRACE_SECONDS)
        if self.grace_deadline is None or deadline < self.grace_deadline:
            self.grace_deadline = deadline
        self.stop_requested.set()

    def run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("pod %s/%s: agent error", self.namespace, self.pod_name)
        finally:
            self.agent.forget(self.uid)

    # -- what the log endpoint reads ----------------------------------------------

    def container_names(self) -> list[str]:
        return [run.name for run in self.containers]

    def container_status(self, name: str) -> Object | None:
        for run in self.containers:
            if run.name == name:
                return self._container_status(run)
        return None

    def instance_log(self, container_id: str) -> InstanceLog | None:
        return self.instance_logs.get(container_id)

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
        if run.container_id:
            status["containerID"] = run.container_id
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
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
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
        next_sync = time.monotonic()
        self.report()

        while True:
            if self.stop_requested.is_set():
                self._kill_all()
                self._settle_phase(restart_policy, killed=True)
                self.report()
                self._finish_deletion()
                return
            if deadline is not None and time.monotonic() > deadline:
                self.grace_deadline = time.monotonic() + max(
                    float(spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)),
                    MINIMUM_GRACE_SECONDS,
                )
                self._kill_all()
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
                self.stop_requested.wait()
                self._finish_deletion()
                return
            changed = False
            for run in self.containers:
                if (
                    run.process is not None
                    and run.process.poll() is not None
                    and ("running" in run.state)
                ):
                    self._record_exit(run)
                    changed = True
                    # A container's exit wakes the kubelet's pod worker at once (PLEG).
                    next_sync = time.monotonic()
            if changed and self._report_settled(restart_policy):
                return
            if time.monotonic() >= next_sync:
                started, failed = self._sync(restart_policy)
                if started or failed:
                    # Pending until every container has started once, as the kubelet's getPhase.
                    self.phase = (
                        "Pending" if any(r.instances == 0 for r in self.containers) else "Running"
                    )
                    if self._report_settled(restart_policy):
                        return
                next_sync = time.monotonic() + (SYNC_RETRY_SECONDS if failed else 3600.0)
            self.stop_requested.wait(0.1)

    def _sync(self, restart_policy: str) -> tuple[bool, bool]:
        """One pass of the kubelet's SyncPod: start what should run; (started any, failed any)."""
        started = failed = False
        for run in self.containers:
            if run.instances == 0:
                pass
            elif run.exited:
                code = (run.state.get("terminated") or run.last_state.get("terminated") or {}).get(
                    "exitCode", 0
                )
                if not should_restart(restart_policy, code):
                    continue
            else:
                continue
            if self._start_container(run):
                started = True
            else:
                failed = True
        return started, failed

    def _start_container(self, run: ContainerRun) -> bool:
        now = time.monotonic()
        if run.instances:
            # kuberuntime's doBackOff: the restart waits while the back-off,
            # counted from when the last instance finished, has not passed.
            if self.restart_backoff.in_backoff_since(run.name, run.finished_at, now):
                delay = format_duration(self.restart_backoff.delay(run.name))
                run.wait(
                    "CrashLoopBackOff",
                    f"back-off {delay} restarting failed container={run.name} "
                    f"pod={pod_reference(self.pod)}",
                )
                self.event(
                    "Warning",
                    "BackOff",
                    f"Back-off restarting failed container {run.name} in pod "
                    f"{pod_reference(self.pod)}",
                )
                return False
            self.restart_backoff.next(run.name, run.finished_at, now)
        container = self.specs[run.name]
        argv = self._pull(run, container)
        if argv is None:
            return False
        try:
            env = EnvResolver(self.kube, self.pod, self.pod_ip).resolve(container)
        except ContainerConfigError as error:
            run.wait("CreateContainerConfigError", str(error))
            self.event("Warning", "Failed", f"Error: {error}")
            return False
        self._start(run, container, argv, env)
        return True

    def _pull(self, run: ContainerRun, container: Object) -> list[str] | None:
        """The image as the kubelet's image manager pulls it: events, ErrImagePull, back-off."""
        image = run.image
        key = f"{self.uid}_{image}"
        now = time.monotonic()
        if repository_of(image) not in self.agent.images.images:
            if self.pull_backoff.in_backoff_since_update(key, now):
                message = f'Back-off pulling image "{image}"'
                self.event("Normal", "BackOff", message)
                previous = self.pull_errors.get(key)
                run.wait("ImagePullBackOff", f"{message}: {previous}" if previous else message)
                self.event("Warning", "Failed", "Error: ImagePullBackOff")
                return None
            self.event("Normal", "Pulling", f'Pulling image "{image}"')
            error = unknown_image(self.agent.images, image)
            self.event("Warning", "Failed", f'Failed to pull image "{image}": {error}')
            self.pull_backoff.next(key, now, now)
            self.pull_errors[key] = f"ErrImagePull: {error}"
            run.wait("ErrImagePull", str(error))
            self.event("Warning", "Failed", "Error: ErrImagePull")
            return None
        # As for imagePullPolicy IfNotPresent: every start finds the image there.
        self.event("Normal", "Pulled", f'Container image "{image}" already present on machine')
        try:
            return self.agent.images.argv(container)
        except UnknownImageError as error:
            # The image is there but its program is not: the runtime fails to
            # start the container, as runc does for a missing executable.
            self._start_failed(run, str(error))
            return None

    def _report_settled(self, restart_policy: str) -> bool:
        """Report the pod's new state; True once it has ended and its deletion is done."""
        self._settle_phase(restart_policy, killed=False)
        self.report()
        if self.phase not in ("Succeeded", "Failed"):
            return False
        self.stop_requested.wait()
        self._finish_deletion()
        return True

    def _settle_phase(self, restart_policy: str, killed: bool) -> None:
        if not killed:
            still_running = any("terminated" not in run.state for run in self.containers)
            if still_running or restart_policy == "Always":
                return
            codes = [run.state["terminated"]["exitCode"] for run in self.containers]
            if restart_policy == "OnFailure" and any(code != 0 for code in codes):
                return
        codes = [run.state.get("terminated", {}).get("exitCode", 137) for run in self.containers]
        self.phase = "Succeeded" if all(code == 0 for code in codes) else "Failed"

    def _message_file(self, run: ContainerRun) -> Path:
        return self.directory / f"{run.name}.termination-log"

    def _new_instance(self, run: ContainerRun) -> None:
        if "terminated" in run.state:
            run.last_state = run.state
        if run.instances:
            run.restart_count += 1
        run.instances += 1
        restart = run.instances - 1
        digest = hashlib.sha256(f"{self.uid}/{run.name}/{restart}".encode()).hexdigest()
        run.container_id = f"cronfleet-local://{digest}"
        container_dir = self.directory / "logs" / run.name
        # Only the running and the last terminated instance keep their logs.
        keep = {restart, restart - 1}
        keep_last_instances(container_dir, keep)
        for container_id, kept in list(self.instance_logs.items()):
            if kept.path.parent == container_dir and int(kept.path.stem) not in keep:
                del self.instance_logs[container_id]
        run.log = InstanceLog(container_dir / f"{restart}.log")
        self.instance_logs[run.container_id] = run.log
        run.finished_at = 0.0

    def _start_failed(self, run: ContainerRun, message: str) -> None:
        self._new_instance(run)
        assert run.log is not None
        run.log.start_closing_when_pumps_end()
        run.process = None
        run.finished_at = time.monotonic()
        run.state = {
            "terminated": {
                "exitCode": 128,
                "reason": "StartError",
                "message": message,
                "startedAt": "1970-01-01T00:00:00Z",
                "finishedAt": now_iso(),
                "containerID": run.container_id,
            }
        }
        self.event("Warning", "Failed", f"Error: {message}")

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
        try:
            process = subprocess.Popen(
                argv,
                env=full_env,
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as error:
            self._start_failed(run, str(error))
            return
        self._new_instance(run)
        assert run.log is not None and process.stdout is not None and process.stderr is not None
        run.log.attach("stdout", process.stdout)
        run.log.attach("stderr", process.stderr)
        run.log.start_closing_when_pumps_end()
        run.process = process
        run.started_at = now_iso()
        run.state = {"running": {"startedAt": run.started_at}}
        self.event("Normal", "Created", f"Created container: {run.name}")
        self.event("Normal", "Started", f"Started container {run.name}")

    def _record_exit(self, run: ContainerRun) -> None:
        assert run.process is not None
        container = self.specs[run.name]
        code = run.process.returncode
        if code < 0:  # killed by a signal: report it the way container runtimes do
            code = 128 - code
        run.finished_at = time.monotonic()
        # The container's PID namespace ends with its init: nothing it started outlives it.
        _signal_group(run.process, signal.SIGKILL)
        message = self._message_file(run).read_text(errors="replace")[:MAX_TERMINATION_MESSAGE]
        policy = container.get("terminationMessagePolicy", "File")
        if not message.strip() and code != 0 and policy == "FallbackToLogsOnError":
            assert run.log is not None
            run.log.done.wait(5)
            lines = run.log.text().splitlines()
            message = "\n".join(lines[-FALLBACK_LOG_LINES:])[-MAX_TERMINATION_MESSAGE:]
        terminated: Object = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": run.started_at,
            "finishedAt": now_iso(),
            "containerID": run.container_id,
        }
        if message:
            terminated["message"] = message
        run.state = {"terminated": terminated}

    def _kill_all(self) -> None:
        """Stop every running container as the kubelet's killContainer does.

        SIGTERM goes to the main process only, and only if it handles it (see
        ``catches_sigterm``); whatever still runs when the grace period ends
        gets SIGKILL, so it reports 137.
        """
        if self.grace_deadline is None:
            self.grace_deadline = time.monotonic() + grace_period_seconds(self.pod)
        running = [
            run for run in self.containers if run.process is not None and run.process.poll() is None
        ]
        for run in running:
            assert run.process is not None
            self.event("Normal", "Killing", f"Stopping container {run.name}")
            try:
                proc_status = Path(f"/proc/{run.process.pid}/status").read_text()
            except OSError:
                continue
            if catches_sigterm(proc_status):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(run.process.pid, signal.SIGTERM)
        while time.monotonic() < self.grace_deadline and any(
            r.process and r.process.poll() is None for r in running
        ):
            time.sleep(0.05)
        for run in running:
            if run.process and run.process.poll() is None:
                _signal_group(run.process, signal.SIGKILL)
                run.process.wait()
        for run in self.containers:
            # Those that ended on their own meanwhile are recorded too.
            if run.process is not None and "running" in run.state:
                self._record_exit(run)

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
        self,
        kube: Kube,
        node_name: str,
        state_dir: Path,
        api_port: int,
        images: ImageCatalogue,
        addresses: PodAddresses | None = None,
    ) -> None:
        self.kube = kube
        self.node_name = node_name
        self.state_dir = state_dir
        self.api_port = api_port
        self.images = images
        self.addresses = addresses or PodAddresses()
        # The port of the kubelet endpoint (pod logs); 0 while none is served.
        self.kubelet_port = 0
        self.runners: dict[str, PodRunner] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._events: queue.SimpleQueue[Object] = queue.SimpleQueue()
        threading.Thread(target=self._write_events, name="events", daemon=True).start()

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
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
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
        self.addresses.release(uid)

    def log_source(self, namespace: str, name: str) -> LogSource | None:
        """The pod the log endpoint asks for, if it runs (or ran and still exists) here."""
        with self.lock:
            runners = [
                r for r in self.runners.values() if (r.namespace, r.pod_name) == (namespace, name)
            ]
        # A pod being deleted and its successor of the same name: the newer one.
        return runners[-1] if runners else None

    def serve_logs(self, tls: LogServerTls, port: int = 0) -> LogServer:
        server = LogServer((HOST_IP, port), tls, self.log_source)
        self.kubelet_port = server.port
        server.serve_in_background()
        return server

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
        self._events.put(body)

    def _write_events(self) -> None:
        # Events are written by one thread, in order, as the kubelet's event
        # broadcaster does: a container's start never waits on them.
        while True:
            body = self._events.get()
            try:
                self.kube.create(EVENTS, body, body["metadata"]["namespace"])
            except Exception as error:
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
            else:
                self.addresses.release(uid)
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
        pod_ip = pod.get("status", {}).get("podIP")
        if pod_ip:
            # Still the pod's address while the pod exists, even if the agent restarted.
            self.addresses.reserve(uid, pod_ip)
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
    parser.add_argument(
        "--pod-range",
        default=DEFAULT_POD_RANGE,
        help="loopback block pods get their addresses from (default %(default)s)",
    )
    tls = parser.add_argument_group(
        "kubelet endpoint", "serve pod logs over HTTPS to clients with a certificate of the CA"
    )
    tls.add_argument("--tls-cert-file", type=Path)
    tls.add_argument("--tls-private-key-file", type=Path)
    tls.add_argument("--client-ca-file", type=Path)
    tls.add_argument("--port", type=int, default=0, help="0: any free port (announced on the Node)")
    args = parser.parse_args(argv)
    tls_files = (args.tls_cert_file, args.tls_private_key_file, args.client_ca_file)
    if any(tls_files) and not all(tls_files):
        parser.error(
            "--tls-cert-file, --tls-private-key-file and --client-ca-file go together; "
            "give all three to serve pod logs, or none"
        )
    try:
        addresses = PodAddresses(args.pod_range)
    except PodRangeError as error:
        parser.error(f"--pod-range: {error}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args.state_dir.mkdir(parents=True, exist_ok=True)
    (args.state_dir / "home").mkdir(exist_ok=True)
    agent = NodeAgent(
        Kube.from_kubeconfig(args.kubeconfig),
        args.node_name,
        args.state_dir,
        args.api_port,
        ImageCatalogue.default(),
        addresses,
    )
    if all(tls_files):
        server = agent.serve_logs(LogServerTls(*tls_files), args.port)
        log.info("serving pod logs on https://%s:%d", HOST_IP, server.port)
    signal.signal(signal.SIGTERM, agent.shutdown)
    agent.register()
    threading.Thread(target=agent.heartbeat_loop, name="heartbeat", daemon=True).start()
    if args.ready_file:
        args.ready_file.write_text("ready\n")
    log.info("node %s registered; watching pods", args.node_name)
    agent.watch_pods()


if __name__ == "__main__":
    main()
