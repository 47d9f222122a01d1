"""Build and cache the control-plane programs from the Go module proxy.

The wrapper Go modules under ``hack/kubernetes`` and ``hack/etcd`` pin the
versions; the built programs live outside the repository, keyed by version,
so a clean clone reuses them and only a version change rebuilds.
"""

from __future__ import annotations

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

HACK_DIR = Path(__file__).resolve().parent.parent
KUBERNETES_MODULE = HACK_DIR / "kubernetes"
ETCD_MODULE = HACK_DIR / "etcd"
HELM_MODULE = HACK_DIR / "helm"

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


def cached_helm(root: Path | None = None) -> Path:
    return (root or cache_root()) / "bin" / f"helm-{HELM_VERSION}" / "helm"


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
        ldflags = f"-s -w -X helm.sh/helm/v3/internal/version.version={HELM_VERSION}"
        _build(HELM_MODULE, helm.parent, ["helm.sh/helm/v3/cmd/helm"], ldflags)
        if log:
            print(
                f"[cronfleet-devcluster] built Helm in {time.monotonic() - started:.0f}s",
                file=sys.stderr,
                flush=True,
            )
    return helm


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


def _build(module: Path, out_dir: Path, packages: list[str], ldflags: str) -> None:
    # Build into a scratch directory and rename, so an interrupted build
    # never leaves a half-written program that later runs would trust.
    scratch = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod -buildvcs=false")
    output = str(scratch) + "/"
    command = [_go(), "build", "-trimpath", "-ldflags", ldflags, "-o", output, *packages]
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
