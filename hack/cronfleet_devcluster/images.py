"""Which container images the local node agent can run, and as what.

A container image is a program plus an entrypoint. Here an image is mapped
to a program on this machine, and the container's ``command`` and ``args``
override the image's entrypoint and default arguments the way a container
runtime does.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class UnknownImageError(Exception):
    """The agent has no local program for this image."""


def repository_of(image: str) -> str:
    """``registry:5000/team/cronfleet-runner:1.2@sha256:..`` -> ``cronfleet-runner``."""
    without_digest = image.split("@", 1)[0]
    last = without_digest.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


@dataclass(frozen=True)
class LocalImage:
    entrypoint: tuple[str, ...]
    default_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageCatalogue:
    images: dict[str, LocalImage]

    @classmethod
    def default(cls) -> ImageCatalogue:
        venv_bin = Path(sys.executable).parent
        runner = venv_bin / "cronfleet-runner"
        operator = venv_bin / "cronfleet-operator"
        return cls(
            {
                # The shared runner image: ENTRYPOINT ["cronfleet-runner"].
                "cronfleet-runner": LocalImage((str(runner),)),
                # The operator image: ENTRYPOINT ["cronfleet-operator"].
                "cronfleet-operator": LocalImage((str(operator),)),
                # General-purpose shell images run their commands with this
                # machine's tools, which covers the `sh -c ...` of tests and docs.
                "busybox": LocalImage((), ("sh",)),
                "alpine": LocalImage((), ("sh",)),
            }
        )

    def argv(self, container: dict[str, Any]) -> list[str]:
        image = container.get("image", "")
        local = self.images.get(repository_of(image))
        if local is None:
            known = ", ".join(sorted(self.images))
            raise UnknownImageError(
                f"image {image!r} cannot run on the cronfleet local node agent; "
                f"it runs images named {known}"
            )
        command: list[str] = list(container.get("command") or local.entrypoint)
        args: list[str] = list(
            container.get("args") or ([] if container.get("command") else local.default_args)
        )
        argv = command + args
        if not argv:
            raise UnknownImageError(
                f"image {image!r} has no entrypoint and the container no command"
            )
        program = argv[0]
        if "/" not in program:
            venv_candidate = Path(sys.executable).parent / program
            resolved = str(venv_candidate) if venv_candidate.exists() else shutil.which(program)
            if resolved is None:
                raise UnknownImageError(
                    f"executable {program!r} of image {image!r} is not on this node"
                )
            argv[0] = resolved
        return argv
