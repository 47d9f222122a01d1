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
    helm = cached_helm(root)
    if not helm.exists():
        if log:
            print(
                f"[cronfleet-devcluster] building Helm {HELM_VERSION} from the Go module proxy ...",
                file=sys.stderr,
                flush=True,
            )
        started = time.monotonic()
        major, minor = helm_kube_version()
        assignments = [f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}"]
        for package in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
            assignments += [
                f"-X {package}.k8sVersionMajor={major}",
                f"-X {package}.k8sVersionMinor={minor}",
            ]
        ldflags = " ".join(["-s", "-w", *assignments])
        _build(HELM_MODULE, helm.parent, ["helm.sh/helm/v3/cmd/helm"], ldflags)
        if log:
            print(
                f"[cronfleet-devcluster] built Helm in {time.monotonic() - started:.0f}s",
                file=sys.stderr,
                flush=True,
            )
    return helm


def cached_promtool(root: Path | None = None) -> Path:
    return (root or cache_root()) / "bin" / f"promtool-{PROMETHEUS_VERSION}" / "promtool"


def prometheus_release(module_version: str = PROMETHEUS_VERSION) -> str:
    """The Prometheus release of a module version: v0.316.0 is 3.16.0."""
    _, minor, patch = module_version.lstrip("v").split(".")
    return f"{int(minor) // 100}.{int(minor) % 100}.{patch}"


def ensure_promtool(root: Path | None = None, log: bool = True) -> Path:
    """Prometheus' promtool, which unit-tests the chart's alerts; built when missing."""
    promtool = cached_promtool(root)
    if not promtool.exists():
        if log:
            print(
                f"[cronfleet-devcluster] building promtool {prometheus_release()} "
                "from the Go module proxy ...",
                file=sys.stderr,
                flush=True,
            )
        started = time.monotonic()
        ldflags = f"-s -w -X github.com/prometheus/common/version.Version={prometheus_release()}"
        # Rule tests need no service discovery; leaving out the cloud
        # providers' SDKs makes the build much smaller.
        _build(
            PROMTOOL_MODULE,
            promtool.parent,
            ["github.com/prometheus/prometheus/cmd/promtool"],
            ldflags,
            tags=("remove_all_sd",),
        )
        if log:
            print(
                f"[cronfleet-devcluster] built promtool in {time.monotonic() - started:.0f}s",
                file=sys.stderr,
                flush=True,
            )
    return promtool


def kstatus_cli_utils_version() -> str:
    """The sigs.k8s.io/cli-utils version ``hack/kstatus/go.mod`` requires."""
    for line in (KSTATUS_MODULE / "go.mod").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "sigs.k8s.io/cli-utils":
            return fields[1]
    raise RuntimeError(f"{KSTATUS_MODULE / 'go.mod'} does not require sigs.k8s.io/cli-utils")


def cached_kstatus(root: Path | None = None) -> Path:
    # The helper has code of its own: a digest of it is part of the key, so
    # an edit to main.go or go.mod rebuilds it even when cli-utils stays put.
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((KSTATUS_MODULE / name).read_bytes())
    directory = f"kstatus-{kstatus_cli_utils_version()}-{digest.hexdigest()[:8]}"
    return (root or cache_root()) / "bin" / directory / "kstatus"


def ensure_kstatus(root: Path | None = None, log: bool = True) -> Path:
    """The kstatus helper (``hack/kstatus``), built from the Go module proxy when missing."""
    kstatus = cached_kstatus(root)
    if not kstatus.exists():
        if log:
            print(
                f"[cronfleet-devcluster] building kstatus (cli-utils "
                f"{kstatus_cli_utils_version()}) from the Go module proxy ...",
                file=sys.stderr,
                flush=True,
            )
        started = time.monotonic()
        _build(KSTATUS_MODULE, kstatus.parent, ["."], "-s -w")
        if log:
            print(
                f"[cronfleet-devcluster] built kstatus in {time.monotonic() - started:.0f}s",
                file=sys.stderr,
                flush=True,
            )
    return kstatus


def cached_cron_oracle(root: Path | None = None) -> Path:
    # Keyed by the library's version and a digest of the oracle's own code,
    # so an edit to main.go rebuilds it while unchanged runs reuse it.
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((CRON_ORACLE_MODULE / name).read_bytes())
    directory = f"cronoracle-{ROBFIG_CRON_VERSION}-{digest.hexdigest()[:8]}"
    return (root or cache_root()) / "bin" / directory / "cronoracle"


def ensure_cron_oracle(root: Path | None = None, log: bool = True) -> Path:
    """The cron oracle (``hack/cronoracle``): robfig/cron as the CronJob controller uses it."""
    oracle = cached_cron_oracle(root)
    if not oracle.exists():
        if log:
            print(
                f"[cronfleet-devcluster] building the cron oracle (robfig/cron "
                f"{ROBFIG_CRON_VERSION}) from the Go module proxy ...",
                file=sys.stderr,
                flush=True,
            )
        started = time.monotonic()
        # The module path ends in "cronoracle", so that is the program's name.
        _build(CRON_ORACLE_MODULE, oracle.parent, ["."], "-s -w")
        if log:
            print(
                f"[cronfleet-devcluster] built the cron oracle in "
                f"{time.monotonic() - started:.0f}s",
                file=sys.stderr,
                flush=True,
            )
    return oracle


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


def ensure_binaries(root: Path | None = None, log: bool = True) -> Binaries:
    """Return the cached programs, building whichever are missing."""
    binaries = cached_binaries(root)

    def say(message: str) -> None:
        if log:
            print(f"[cronfleet-devcluster] {message}", file=sys.stderr, flush=True)

    if not binaries.etcd.exists():
        say(f"building etcd {ETCD_VERSION} from the Go module proxy ...")
        started = time.monotonic()
        # The module path ends in "etcd", so that is the program's name.
        _build(ETCD_MODULE, binaries.etcd.parent, ["."], "-s -w")
        say(f"built etcd in {time.monotonic() - started:.0f}s")
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
