"""Build and cache the control-plane programs from the Go module proxy.

The wrapper Go modules under ``hack/`` (``kubernetes``, ``etcd``, ``helm``,
``promtool`` ...) pin the versions; the built programs live outside the
repository, keyed by version, so a clean clone reuses them and only a
version change rebuilds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.5.35"
HELM_VERSION = "v3.19.2"
# Prometheus 3.x releases are published as Go module versions v0.3xx.y.
PROMETHEUS_VERSION = "v0.316.0"
# The cron library the CronJob controller vendors; hack/cronoracle/go.mod pins it.
ROBFIG_CRON_VERSION = "v3.0.1"

HACK_DIR = Path(__file__).resolve().parent.parent
KUBERNETES_MODULE = HACK_DIR / "kubernetes"
ETCD_MODULE = HACK_DIR / "etcd"
HELM_MODULE = HACK_DIR / "helm"
PROMTOOL_MODULE = HACK_DIR / "promtool"
KSTATUS_MODULE = HACK_DIR / "kstatus"
CRON_ORACLE_MODULE = HACK_DIR / "cronoracle"
NODE_PROBE_MODULE = HACK_DIR / "nodeprobe"

KUBERNETES_PROGRAMS = ("kube-apiserver", "kube-controller-manager", "kubectl")


def cache_root() -> Path:
    """Where built programs are kept: ``$CRONFLEET_CACHE`` or ``~/.cache/cronfleet``."""
    configured = os.environ.get("CRONFLEET_CACHE")
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "cronfleet"


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kubectl: Path

    def all(self) -> tuple[Path, ...]:
        return (self.etcd, self.kube_apiserver, self.kube_controller_manager, self.kubectl)


def cached_binaries(root: Path | None = None) -> Binaries:
    """The paths the programs have (or will have) in the cache."""
    root = root or cache_root()
    kube_dir = root / "bin" / f"kubernetes-{KUBERNETES_VERSION}"
    etcd_dir = root / "bin" / f"etcd-{ETCD_VERSION}"
    return Binaries(
        etcd=etcd_dir / "etcd",
        kube_apiserver=kube_dir / "kube-apiserver",
        kube_controller_manager=kube_dir / "kube-controller-manager",
        kubectl=kube_dir / "kubectl",
    )


def _say(log: bool, message: str) -> None:
    if log:
        print(f"[cronfleet-devcluster] {message}", file=sys.stderr, flush=True)


def _build_once(
    program: Path,
    what: str,
    module: Path,
    packages: list[str],
    ldflags: str,
    log: bool,
    tags: tuple[str, ...] = (),
) -> Path:
    """Build ``program`` from the Go module proxy unless the cache has it."""
    if not program.exists():
        _say(log, f"building {what} from the Go module proxy ...")
        started = time.monotonic()
        _build(module, program.parent, packages, ldflags, tags=tags)
        _say(log, f"built {what} in {time.monotonic() - started:.0f}s")
    return program


def _source_digest(module: Path) -> str:
    """A digest of a helper's own code, so an edit rebuilds it while unchanged runs reuse it."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((module / name).read_bytes())
    return digest.hexdigest()[:8]


def helm_kube_version() -> tuple[str, str]:
    """The Kubernetes version Helm assumes without ``--kube-version``, as (major, minor).

    Helm's release build derives it from the client-go it is built with
    (client-go v0.34.x is Kubernetes 1.34); without these link flags Helm
    assumes 1.20 and refuses charts that need a newer cluster.
    """
    for line in (HELM_MODULE / "go.mod").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "k8s.io/client-go":
            major, minor = fields[1].lstrip("v").split(".")[:2]
            return str(int(major) + 1), minor
    raise RuntimeError(f"{HELM_MODULE / 'go.mod'} does not require k8s.io/client-go")


def cached_helm(root: Path | None = None) -> Path:
    # The assumed Kubernetes version is part of the key: a Helm built with
    # other defaults (or none, as before) must not be reused.
    major, minor = helm_kube_version()
    return (root or cache_root()) / "bin" / f"helm-{HELM_VERSION}-kube{major}.{minor}" / "helm"


def ensure_helm(root: Path | None = None, log: bool = True) -> Path:
    """The Helm client, built from the Go module proxy when missing."""
    major, minor = helm_kube_version()
    assignments = [f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}"]
    for package in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
        assignments += [
            f"-X {package}.k8sVersionMajor={major}",
            f"-X {package}.k8sVersionMinor={minor}",
        ]
    return _build_once(
        cached_helm(root),
        f"Helm {HELM_VERSION}",
        HELM_MODULE,
        ["helm.sh/helm/v3/cmd/helm"],
        " ".join(["-s", "-w", *assignments]),
        log,
    )


def cached_promtool(root: Path | None = None) -> Path:
    return (root or cache_root()) / "bin" / f"promtool-{PROMETHEUS_VERSION}" / "promtool"


def prometheus_release(module_version: str = PROMETHEUS_VERSION) -> str:
    """The Prometheus release of a module version: v0.316.0 is 3.16.0."""
    _, minor, patch = module_version.lstrip("v").split(".")
    return f"{int(minor) // 100}.{int(minor) % 100}.{patch}"


def ensure_promtool(root: Path | None = None, log: bool = True) -> Path:
    """Prometheus' promtool, which unit-tests the chart's alerts; built when missing."""
    # Rule tests need no service discovery; leaving out the cloud
    # providers' SDKs makes the build much smaller.
    return _build_once(
        cached_promtool(root),
        f"promtool {prometheus_release()}",
        PROMTOOL_MODULE,
        ["github.com/prometheus/prometheus/cmd/promtool"],
        f"-s -w -X github.com/prometheus/common/version.Version={prometheus_release()}",
        log,
        tags=("remove_all_sd",),
    )


def kstatus_cli_utils_version() -> str:
    """The sigs.k8s.io/cli-utils version ``hack/kstatus/go.mod`` requires."""
    for line in (KSTATUS_MODULE / "go.mod").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "sigs.k8s.io/cli-utils":
            return fields[1]
    raise RuntimeError(f"{KSTATUS_MODULE / 'go.mod'} does not require sigs.k8s.io/cli-utils")


def cached_kstatus(root: Path | None = None) -> Path:
    directory = f"kstatus-{kstatus_cli_utils_version()}-{_source_digest(KSTATUS_MODULE)}"
    return (root or cache_root()) / "bin" / directory / "kstatus"


def ensure_kstatus(root: Path | None = None, log: bool = True) -> Path:
    """The kstatus helper (``hack/kstatus``), built from the Go module proxy when missing."""
    what = f"kstatus (cli-utils {kstatus_cli_utils_version()})"
    return _build_once(cached_kstatus(root), what, KSTATUS_MODULE, ["."], "-s -w", log)


def cached_cron_oracle(root: Path | None = None) -> Path:
    directory = f"cronoracle-{ROBFIG_CRON_VERSION}-{_source_digest(CRON_ORACLE_MODULE)}"
    return (root or cache_root()) / "bin" / directory / "cronoracle"


def ensure_cron_oracle(root: Path | None = None, log: bool = True) -> Path:
    """The cron oracle (``hack/cronoracle``): robfig/cron as the CronJob controller uses it."""
    # The module path ends in "cronoracle", so that is the program's name.
    what = f"the cron oracle (robfig/cron {ROBFIG_CRON_VERSION})"
    return _build_once(cached_cron_oracle(root), what, CRON_ORACLE_MODULE, ["."], "-s -w", log)


def version_ldflags(version: str) -> str:
    """Link-time flags that make ``--version`` print the real release.

    A module build has no git tree to derive them from, which is what the
    upstream build scripts would otherwise do.
    """
    major, minor = version.lstrip("v").split(".")[:2]
    assignments = []
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assignments += [
            f"-X {package}.gitVersion={version}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
        ]
    return " ".join(["-s", "-w", *assignments])


def _go() -> str:
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(go).exists():
        raise RuntimeError(
            "the Go toolchain is needed to build the control plane; `go` is not on PATH"
        )
    return go


def _build(
    module: Path, out_dir: Path, packages: list[str], ldflags: str, tags: tuple[str, ...] = ()
) -> None:
    # Build into a scratch directory and rename, so an interrupted build
    # never leaves a half-written program that later runs would trust.
    scratch = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod -buildvcs=false")
    output = str(scratch) + "/"
    command = [_go(), "build", "-trimpath", "-ldflags", ldflags, "-o", output]
    if tags:
        command += ["-tags", ",".join(tags)]
    command += packages
    subprocess.run(command, cwd=module, env=env, check=True)
    shutil.rmtree(out_dir, ignore_errors=True)
    scratch.rename(out_dir)


# The real node's programs (CRONFLEET_NODE=kubelet): the kubelet, and the
# scheduler that the node agent's own binding stands in for otherwise.
NODE_PROGRAMS = ("kubelet", "kube-scheduler")


@dataclass(frozen=True)
class NodeBinaries:
    kubelet: Path
    kube_scheduler: Path

    def all(self) -> tuple[Path, ...]:
        return (self.kubelet, self.kube_scheduler)


def cached_node_binaries(root: Path | None = None) -> NodeBinaries:
    directory = (root or cache_root()) / "bin" / f"kubernetes-node-{KUBERNETES_VERSION}"
    return NodeBinaries(kubelet=directory / "kubelet", kube_scheduler=directory / "kube-scheduler")


def ensure_node_binaries(root: Path | None = None, log: bool = True) -> NodeBinaries:
    """The kubelet and kube-scheduler of the pinned release, built when missing.

    Only the real node needs them, and a cold build takes minutes, so they
    are kept apart from the control-plane programs every test session builds.
    """
    programs = cached_node_binaries(root)
    if not all(path.exists() for path in programs.all()):
        _say(
            log,
            f"building Kubernetes {KUBERNETES_VERSION} ({', '.join(NODE_PROGRAMS)}) "
            "from the Go module proxy; a cold build takes a few minutes ...",
        )
        started = time.monotonic()
        _build(
            KUBERNETES_MODULE,
            programs.kubelet.parent,
            [f"k8s.io/kubernetes/cmd/{name}" for name in NODE_PROGRAMS],
            version_ldflags(KUBERNETES_VERSION),
        )
        _say(log, f"built the node programs in {time.monotonic() - started:.0f}s")
    return programs


def cached_node_probe(root: Path | None = None) -> Path:
    directory = f"nodeprobe-{_source_digest(NODE_PROBE_MODULE)}"
    return (root or cache_root()) / "bin" / directory / "nodeprobe"


def ensure_node_probe(root: Path | None = None, log: bool = True) -> Path:
    """The static program of the real node's pause image and smoke test (``hack/nodeprobe``)."""
    what = "the node probe (pause container and smoke-test program)"
    return _build_once(cached_node_probe(root), what, NODE_PROBE_MODULE, ["."], "-s -w", log)


def ensure_binaries(root: Path | None = None, log: bool = True) -> Binaries:
    """Return the cached programs, building whichever are missing."""
    binaries = cached_binaries(root)

    def say(message: str) -> None:
        _say(log, message)

    # The module path ends in "etcd", so that is the program's name.
    _build_once(binaries.etcd, f"etcd {ETCD_VERSION}", ETCD_MODULE, ["."], "-s -w", log)
    kube = [binaries.kube_apiserver, binaries.kube_controller_manager, binaries.kubectl]
    if not all(path.exists() for path in kube):
        say(
            f"building Kubernetes {KUBERNETES_VERSION} ({', '.join(KUBERNETES_PROGRAMS)}) "
            "from the Go module proxy; a cold build takes a while on two cores ..."
        )
        started = time.monotonic()
        packages = [f"k8s.io/kubernetes/cmd/{name}" for name in KUBERNETES_PROGRAMS]
        _build(
            KUBERNETES_MODULE,
            binaries.kube_apiserver.parent,
            packages,
            version_ldflags(KUBERNETES_VERSION),
        )
        say(f"built Kubernetes programs in {time.monotonic() - started:.0f}s")
    else:
        say(f"reusing cached programs under {binaries.kube_apiserver.parent.parent}")
    return binaries
