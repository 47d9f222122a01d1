"""Build the operator and runner images with podman, on machines without Docker or a registry.

``make images`` runs ``python -m cronfleet_devcluster.containerimages build``. It
builds ``operator/Dockerfile`` and ``runner-image/Dockerfile`` unchanged, tagged with
the chart's default repositories and the package version, and saves each image as a
docker archive under the cache (``ctr -n k8s.io images import`` and ``podman load``
read it).

The Dockerfiles start ``FROM python:3.11-slim-bookworm``, which cannot be pulled
where no image registry is reachable. Unless ``--python-image`` names one that can
be, the base is made here from Debian's packages instead (``mmdebstrap``): Debian
bookworm's Python 3.11, the interpreter the lock files are resolved for, with ``pip``
and ``python`` on PATH and pip allowed to install into the system, as in the
official image.

Everything is cached under ``$CRONFLEET_CACHE/images`` (``~/.cache/cronfleet/images``)
and keyed by a digest of what it is made from: the base by its recipe, an image by
its Dockerfile, the files its build context uses, its lock file and the base's image
ID. A warm run builds nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from cronfleet_devcluster.binaries import cache_root

REPO_ROOT = Path(__file__).resolve().parents[2]

# The bundle `update-ca-certificates` maintains. Builds reach PyPI through it:
# it is mounted read-only at the same path for RUN steps and never copied.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

# The label that records which inputs an image was built from, so a warm run
# can tell a current image from one of the same tag built from other sources.
INPUTS_LABEL = "io.cronfleet.build-inputs"

# Debian bookworm's python3 is 3.11, the version the lock files are for.
DEBIAN_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-pip", "ca-certificates")
BASE_REPOSITORY = "localhost/cronfleet-python"

# How the Debian base differs from a bare minbase: what the official image has
# (pip and python on PATH, pip free to install system-wide, UTF-8) and lacks
# (documentation, manual pages and translations). The merged-usr hook makes
# /usr merged as debootstrap does, instead of with the usrmerge package, which
# would bring perl (about 50 MB) into the image.
MMDEBSTRAP_HOOKS = Path("/usr/share/mmdebstrap/hooks")
_BASE_MMDEBSTRAP_OPTIONS = (
    "--variant=minbase",
    f"--include={','.join(BASE_PACKAGES)}",
    f"--hook-dir={MMDEBSTRAP_HOOKS / 'merged-usr'}",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    '--customize-hook=rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
    '--customize-hook=ln -s /usr/bin/python3 "$1"/usr/local/bin/python',
    '--customize-hook=ln -s /usr/bin/pip3 "$1"/usr/local/bin/pip',
    '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
)
_BASE_IMAGE_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)

# The Debian package of each program, for the message when one is missing.
REQUIRED_PROGRAMS = {"podman": "podman", "runc": "runc"}
BASE_PROGRAMS = {"mmdebstrap": "mmdebstrap"}

# runc, as crun refuses these machines' hybrid cgroup layout; cgroupfs, as no
# systemd manages their cgroups.
PODMAN_GLOBAL_OPTIONS = ("--runtime", "runc", "--cgroup-manager", "cgroupfs")


class ImageBuildError(Exception):
    """A tool is missing or a build step failed; the message says which and why."""


@dataclass(frozen=True)
class ImageSpec:
    """One of the repository's images: where its Dockerfile is and what it is built from."""

    name: str
    dockerfile: str
    context: str
    # Files and directories (relative to the repository) whose content the image
    # is made from: what the Dockerfile copies or mounts from its context.
    inputs: tuple[str, ...]

    def repository(self) -> str:
        return chart_repositories()[self.name]


OPERATOR = ImageSpec(
    name="cronfleet-operator",
    dockerfile="operator/Dockerfile",
    context=".",
    inputs=(
        ".dockerignore",
        "operator/Dockerfile",
        "operator/requirements.lock",
        "pyproject.toml",
        "README.md",
        "operator/cronfleet",
        "runner-image/pyproject.toml",
        "runner-image/README.md",
        "runner-image/cronfleet_runner",
    ),
)
RUNNER = ImageSpec(
    name="cronfleet-runner",
    dockerfile="runner-image/Dockerfile",
    context="runner-image",
    inputs=(
        "runner-image/Dockerfile",
        "runner-image/requirements.lock",
        "runner-image/pyproject.toml",
        "runner-image/README.md",
        "runner-image/cronfleet_runner",
    ),
)
IMAGES = (OPERATOR, RUNNER)


@dataclass(frozen=True)
class BuiltImage:
    spec: ImageSpec
    reference: str
    archive: Path
    size_bytes: int
    # "built", "loaded" (from the archive) or "reused" (already in podman's store).
    how: str
    seconds: float


def images_cache(root: Path | None = None) -> Path:
    return (root or cache_root()) / "images"


def package_version() -> str:
    with (REPO_ROOT / "pyproject.toml").open("rb") as file:
        version = tomllib.load(file)["project"]["version"]
    if not isinstance(version, str):
        raise ImageBuildError(f"pyproject.toml's project.version is {version!r}, not a string")
    return version


def chart_repositories() -> dict[str, str]:
    """The image repositories the chart's values.yaml installs by default."""
    values = yaml.safe_load((REPO_ROOT / "charts/cronfleet/values.yaml").read_text())
    return {
        "cronfleet-operator": str(values["operator"]["image"]["repository"]),
        "cronfleet-runner": str(values["runner"]["image"]["repository"]),
    }


def image_reference(spec: ImageSpec) -> str:
    return f"{spec.repository()}:{package_version()}"


def _check_programs(programs: dict[str, str]) -> None:
    missing = sorted(package for program, package in programs.items() if not shutil.which(program))
    if missing:
        raise ImageBuildError(
            f"building the images needs the Debian package(s) {', '.join(missing)}, which "
            f"are not installed: apt-get install -y --no-install-recommends {' '.join(missing)}"
        )


def _say(message: str) -> None:
    print(f"[images] {message}", file=sys.stderr, flush=True)


def _run(argv: Sequence[str], what: str) -> str:
    """Run a tool; on failure, raise with the end of its output."""
    completed = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-30:])
        raise ImageBuildError(f"{what} failed (exit {completed.returncode}):\n{tail}")
    return completed.stdout


def _stream(argv: Sequence[str], what: str, log: Path) -> None:
    """Run a long step with its output in ``log``, which the error points to."""
    with log.open("w") as output:
        completed = subprocess.run(
            list(argv), stdout=output, stderr=subprocess.STDOUT, text=True, check=False
        )
    if completed.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-30:])
        raise ImageBuildError(
            f"{what} failed (exit {completed.returncode}); full output in {log}:\n{tail}"
        )


def podman(*args: str) -> list[str]:
    return ["podman", *PODMAN_GLOBAL_OPTIONS, *args]


def ulimit_options() -> list[str]:
    """Rlimits for build and run containers that this machine allows.

    Podman asks for higher open-file limits than a container may have here, and
    asking for more than the machine's hard limit is refused.
    """
    options: list[str] = []
    for name, limit in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        hard = resource.getrlimit(limit)[1]
        value = 1024 if hard == resource.RLIM_INFINITY else min(hard, 1024)
        options += ["--ulimit", f"{name}={value}:{value}"]
    return options


def _digest(parts: Iterator[bytes]) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(len(part).to_bytes(8, "big"))
        hasher.update(part)
    return hasher.hexdigest()


def _input_files(spec: ImageSpec) -> list[Path]:
    files: list[Path] = []
    for relative in spec.inputs:
        path = REPO_ROOT / relative
        if path.is_dir():
            files += [
                file
                for file in path.rglob("*")
                if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc"
            ]
        elif path.is_file():
            files.append(path)
        else:
            raise ImageBuildError(f"{relative}, an input of the {spec.name} image, does not exist")
    return sorted(files)


def inputs_digest(spec: ImageSpec, base_id: str, build_args: dict[str, str]) -> str:
    """What the image is made of: its files, the base image's ID and the build arguments."""

    def parts() -> Iterator[bytes]:
        yield spec.name.encode()
        yield base_id.encode()
        yield json.dumps(build_args, sort_keys=True).encode()
        for file in _input_files(spec):
            yield str(file.relative_to(REPO_ROOT)).encode()
            yield file.read_bytes()

    return _digest(parts())


def _image_id(reference: str) -> str | None:
    completed = subprocess.run(
        podman("image", "inspect", "--format", "{{.Id}}", reference),
        capture_output=True,
        text=True,
        check=False,
    )
    return completed.stdout.strip() if completed.returncode == 0 else None


def _label(reference: str, label: str) -> str | None:
    completed = subprocess.run(
        podman("image", "inspect", "--format", "{{json .Labels}}", reference),
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        return None
    labels = json.loads(completed.stdout or "null") or {}
    value = labels.get(label)
    return value if isinstance(value, str) else None


def image_size(reference: str) -> int:
    return int(
        _run(podman("image", "inspect", "--format", "{{.Size}}", reference), "podman inspect")
    )


def base_recipe_digest() -> str:
    recipe = [DEBIAN_SUITE, *_BASE_MMDEBSTRAP_OPTIONS, *_BASE_IMAGE_CHANGES]
    return _digest(part.encode() for part in recipe)


def ensure_debian_base(cache: Path) -> str:
    """The Python 3.11 base image made from Debian packages: reused, imported or made."""
    key = base_recipe_digest()[:16]
    reference = f"{BASE_REPOSITORY}:3.11-{DEBIAN_SUITE}-{key}"
    if _image_id(reference):
        _say(f"base {reference}: reusing the image in podman's store")
        return reference
    archive = cache / f"python-3.11-{DEBIAN_SUITE}-{key}.tar"
    if not archive.exists():
        _say(f"base: making a Debian {DEBIAN_SUITE} root filesystem with {' '.join(BASE_PACKAGES)}")
        started = time.monotonic()
        cache.mkdir(parents=True, exist_ok=True)
        partial = archive.with_suffix(".partial.tar")
        _stream(
            ["mmdebstrap", *_BASE_MMDEBSTRAP_OPTIONS, DEBIAN_SUITE, str(partial)],
            "mmdebstrap (the Debian base)",
            cache / "mmdebstrap.log",
        )
        partial.rename(archive)
        _say(f"base: made {archive.name} in {time.monotonic() - started:.0f} s")
        # Bases of an older recipe are never imported again.
        for stale in cache.glob(f"python-3.11-{DEBIAN_SUITE}-*.tar"):
            if stale != archive:
                stale.unlink()
    changes = [option for change in _BASE_IMAGE_CHANGES for option in ("--change", change)]
    _run(podman("import", *changes, str(archive), reference), "podman import (the Debian base)")
    _say(f"base {reference}: imported from {archive}")
    return reference


def _ca_bundle_options() -> tuple[list[str], dict[str, str]]:
    if not HOST_CA_BUNDLE.is_file():
        return [], {}
    mount = f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"
    return ["--volume", mount], {"PIP_CERT": str(HOST_CA_BUNDLE)}


def _archive_path(cache: Path, spec: ImageSpec, key: str) -> Path:
    return cache / f"{spec.name}-{package_version()}-{key[:16]}.tar"


def ensure_image(
    spec: ImageSpec, python_image: str, cache: Path, rebuild: bool = False
) -> BuiltImage:
    """Build ``spec`` unless podman's store or the cache already has it from the same inputs."""
    started = time.monotonic()
    reference = image_reference(spec)
    base_id = _image_id(python_image) or python_image
    volumes, ca_args = _ca_bundle_options()
    build_args = {"PYTHON_IMAGE": python_image, **ca_args}
    key = inputs_digest(spec, base_id, build_args)
    archive = _archive_path(cache, spec, key)

    how = "reused"
    current = _label(reference, INPUTS_LABEL) == key and not rebuild
    if not current and archive.exists() and not rebuild:
        _run(podman("load", "--input", str(archive)), f"podman load {archive}")
        current = _label(reference, INPUTS_LABEL) == key
        how = "loaded"
    if not current:
        replaced = _image_id(reference)
        _say(f"{spec.name}: building {reference} from {spec.dockerfile}")
        cache.mkdir(parents=True, exist_ok=True)
        arg_options = [
            option for k, v in build_args.items() for option in ("--build-arg", f"{k}={v}")
        ]
        _stream(
            podman(
                "build",
                "--file",
                str(REPO_ROOT / spec.dockerfile),
                "--tag",
                reference,
                "--label",
                f"{INPUTS_LABEL}={key}",
                # podman's layer cache keys a RUN step by its text alone, not by
                # what it bind-mounts (the lock file, the builder's wheels), so a
                # cached step would install stale code. The inputs digest above
                # is the cache instead: unchanged inputs build nothing at all.
                "--layers=false",
                # The build's RUN steps reach PyPI; the images' own network is the pod's.
                "--network",
                "host",
                *ulimit_options(),
                *volumes,
                *arg_options,
                str(REPO_ROOT / spec.context),
            ),
            f"podman build of {spec.name}",
            cache / f"{spec.name}.build.log",
        )
        partial = archive.with_suffix(".partial.tar")
        partial.unlink(missing_ok=True)
        _run(
            podman("save", "--format", "docker-archive", "--output", str(partial), reference),
            f"podman save {reference}",
        )
        partial.rename(archive)
        how = "built"
        if replaced and replaced != _image_id(reference):
            # The image this build untagged; a container still using it keeps it.
            subprocess.run(podman("rmi", replaced), capture_output=True, check=False)
    # Archives of older inputs are never loaded again.
    for stale in cache.glob(f"{spec.name}-*.tar"):
        if stale != archive:
            stale.unlink()
    return BuiltImage(
        spec=spec,
        reference=reference,
        archive=archive,
        size_bytes=image_size(reference),
        how=how,
        seconds=time.monotonic() - started,
    )


def ensure_images(
    python_image: str | None = None,
    specs: Sequence[ImageSpec] = IMAGES,
    cache: Path | None = None,
    rebuild: bool = False,
) -> list[BuiltImage]:
    """Build (or reuse) the images; ``python_image`` None makes the Debian base."""
    # All at once, so that one apt-get line installs whatever is missing.
    _check_programs(REQUIRED_PROGRAMS if python_image else {**REQUIRED_PROGRAMS, **BASE_PROGRAMS})
    cache = cache or images_cache()
    base = python_image or ensure_debian_base(cache)
    return [ensure_image(spec, base, cache, rebuild) for spec in specs]


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.0f} MB"


def command_build(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        built = ensure_images(python_image=args.python_image, rebuild=args.rebuild)
    except ImageBuildError as error:
        print(f"make images: {error}", file=sys.stderr)
        return 1
    width = max(len(image.reference) for image in built)
    for image in built:
        print(
            f"{image.reference:<{width}}  {_megabytes(image.size_bytes):>7}  "
            f"{image.how} in {image.seconds:.0f} s  {image.archive}"
        )
    print(f"images ready in {time.monotonic() - started:.0f} s")
    return 0


def command_archives(args: argparse.Namespace) -> int:
    """Print ``reference archive`` of each image already built, for ``ctr images import``."""
    cache = images_cache()
    status = 0
    for spec in IMAGES:
        archives = sorted(cache.glob(f"{spec.name}-{package_version()}-*.tar"))
        if not archives:
            print(f"{spec.name}: not built yet: run make images", file=sys.stderr)
            status = 1
            continue
        print(f"{image_reference(spec)} {archives[-1]}")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cronfleet_devcluster.containerimages",
        description="Build the cronfleet-operator and cronfleet-runner images with podman.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build (or reuse) both images and print their sizes")
    build.add_argument(
        "--python-image",
        default=os.environ.get("CRONFLEET_PYTHON_IMAGE") or None,
        help="a Python 3.11 base image podman can pull (e.g. python:3.11-slim-bookworm); "
        "default: one made here from Debian packages",
    )
    build.add_argument(
        "--rebuild",
        action="store_true",
        help="build the images even when their inputs did not change (the Debian base is "
        "remade when its archive is deleted and its image removed)",
    )
    build.set_defaults(handler=command_build)
    archives = commands.add_parser("archives", help="print each built image and its archive")
    archives.set_defaults(handler=command_archives)
    args = parser.parse_args(argv)
    status: int = args.handler(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
