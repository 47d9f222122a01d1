"""Masking the values of Secret-sourced environment variables in what a run reports.

A run's summary ends up in the Schedule's ``status.history`` and in events,
which far more people may read than may read the Secrets a Schedule uses;
its log lines end up in log stores. So, as CI systems do, every occurrence
of a secret value is replaced by ``***`` before anything leaves the runner.

The operator tells the runner which variables hold secrets (it knows the
Schedule's spec; the runner only sees values):

- ``CRONFLEET_SECRET_ENV``: names of ``env`` entries with ``secretKeyRef``;
- ``CRONFLEET_SECRET_ENV_FROM``: name patterns (``*`` or ``PREFIX*``) of the
  variables ``envFrom`` Secrets may have set. The keys of those Secrets are
  not known without reading the Secrets, so every variable matching a
  pattern is masked unless it is exempt;
- ``CRONFLEET_PLAIN_ENV``: names the spec sets without a Secret (a literal
  ``value`` or a ConfigMap/field reference); ``env`` overrides ``envFrom``,
  so these can hold no Secret value and are exempt from the patterns.

Masking never makes text longer (a value is at least ``MIN_SECRET_CHARS``
long and becomes three characters), so the summary's byte bounds still hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cronfleet_runner.contract import (
    CONTRACT_PREFIX,
    ENV_PLAIN_ENV,
    ENV_SECRET_ENV,
    ENV_SECRET_ENV_FROM,
)

MASK = "***"
# Shorter values ("1", "on", "eu") would mask ordinary words everywhere and
# hide too little to matter.
MIN_SECRET_CHARS = 4
# A message clipped in the middle of a secret keeps the secret's start;
# what is left of it is masked when it is at least this long.
MIN_CLIPPED_PART_CHARS = 4
CLIP_MARK = "…"

# Set by Kubernetes or the runner image, not by envFrom in any sensible
# Schedule; masking them would turn "/tmp" or the pod's IP into *** in
# every message. A Secret key named like one of them is not masked under
# an envFrom pattern (it still is when named in CRONFLEET_SECRET_ENV).
IMAGE_AND_KUBELET_ENV = frozenset(
    {
        "HOME",
        "HOSTNAME",
        "PATH",
        "PWD",
        "LANG",
        "LC_ALL",
        "TERM",
        "SHLVL",
        "GPG_KEY",
        "PYTHON_VERSION",
        "PYTHON_SHA256",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONUNBUFFERED",
        "KUBERNETES_SERVICE_HOST",
        "KUBERNETES_SERVICE_PORT",
        "KUBERNETES_SERVICE_PORT_HTTPS",
        "KUBERNETES_PORT",
        "KUBERNETES_PORT_443_TCP",
        "KUBERNETES_PORT_443_TCP_ADDR",
        "KUBERNETES_PORT_443_TCP_PORT",
        "KUBERNETES_PORT_443_TCP_PROTO",
    }
)


def _names(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def _matches(name: str, pattern: str) -> bool:
    if pattern.endswith("*"):
        return name.startswith(pattern[:-1])
    return name == pattern


def secret_variables(environ: Mapping[str, str]) -> set[str]:
    """The names of the variables whose values must not be reported."""
    named = {name for name in _names(environ.get(ENV_SECRET_ENV)) if name in environ}
    patterns = _names(environ.get(ENV_SECRET_ENV_FROM))
    if not patterns:
        return named
    exempt = set(_names(environ.get(ENV_PLAIN_ENV))) | IMAGE_AND_KUBELET_ENV
    for name in environ:
        if name in exempt or name.startswith(CONTRACT_PREFIX):
            continue
        if any(_matches(name, pattern) for pattern in patterns):
            named.add(name)
    return named


def value_forms(value: str) -> set[str]:
    """What a value may look like by the time it is reported.

    A trailing newline (common in Secrets made from files) is gone from an
    output line; a multi-line value (a PEM key) is logged line by line; the
    http excerpt collapses whitespace.
    """
    forms = {value, value.strip(), " ".join(value.split())}
    forms.update(line.strip() for line in value.splitlines())
    return {form for form in forms if len(form) >= MIN_SECRET_CHARS}


@dataclass(frozen=True)
class Masker:
    """Replaces secret values in text and in JSON-like values."""

    # Longest first, so that a secret containing another is masked whole.
    secrets: tuple[str, ...] = ()

    @classmethod
    def of_values(cls, values: Iterable[str]) -> Masker:
        forms: set[str] = set()
        for value in values:
            forms |= value_forms(value)
        return cls(tuple(sorted(forms, key=lambda form: (-len(form), form))))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Masker:
        return cls.of_values(environ[name] for name in secret_variables(environ))

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, text: str) -> str:
        if not self.secrets:
            return text
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if CLIP_MARK in text:
            pieces = text.split(CLIP_MARK)
            last = len(pieces) - 1
            text = CLIP_MARK.join(
                self._clipped_edges(piece, head=index > 0, tail=index < last)
                for index, piece in enumerate(pieces)
            )
        return text

    def _clipped_edges(self, piece: str, *, head: bool, tail: bool) -> str:
        # clip() cuts a text and marks the cut with an ellipsis; a cut through
        # a secret leaves its start before the mark (or, for a tail kept from
        # the end, its end after it), which is masked too.
        for secret in self.secrets:
            for length in range(len(secret) - 1, MIN_CLIPPED_PART_CHARS - 1, -1):
                if tail and piece.endswith(secret[:length]):
                    piece = piece[:-length] + MASK
                    tail = False
                if head and piece.startswith(secret[-length:]):
                    piece = MASK + piece[length:]
                    head = False
        return piece

    def value(self, value: Any) -> Any:
        """``value`` with every string in it (keys included) masked."""
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.value(key): self.value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value
