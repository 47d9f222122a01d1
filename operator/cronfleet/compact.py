"""Compact copies of API objects, for the controller's caches.

With thousands of Schedules the caches hold tens of thousands of objects, and
two things in them cost most of the memory while deciding nothing:
``metadata.managedFields`` (the API server's record of who owns which field,
often larger than the spec) and kubectl's last-applied-configuration
annotation (a second copy of the whole object). On top of that, ``json``
makes a new string for every key of every object it decodes: ``"metadata"``,
``"name"``, ``"restartPolicy"``, once per object. A compact copy drops the
first two and shares equal strings, so the caches keep only what decisions
read.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

# kubectl apply's copy of the object as last applied; nothing reads it here.
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
# Longer strings (messages, scripts) are rarely equal to another: not worth a lookup.
SHARED_STRING_MAX = 256


def compact(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``body`` without managedFields and last-applied-configuration."""
    copy: dict[str, Any] = {}
    for key, value in body.items():
        if key == "metadata" and isinstance(value, Mapping):
            copy[sys.intern(key)] = _compact_metadata(value)
        else:
            copy[sys.intern(key)] = _shared(value)
    return copy


def _compact_metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    copy: dict[str, Any] = {}
    for key, value in meta.items():
        if key == "managedFields":
            continue
        if key == "annotations" and isinstance(value, Mapping):
            kept = {k: v for k, v in value.items() if k != LAST_APPLIED_ANNOTATION}
            copy[sys.intern(key)] = _shared(kept)
        else:
            copy[sys.intern(key)] = _shared(value)
    return copy


def _shared(value: Any) -> Any:
    # Exact types first: decoded JSON holds only these, and an ABC's isinstance
    # check costs more than the copy (a restart compacts every listed object).
    kind = type(value)
    if kind is str:  # sys.intern takes exact str only
        return sys.intern(value) if len(value) <= SHARED_STRING_MAX else value
    if kind is dict or isinstance(value, Mapping):
        return {sys.intern(str(key)): _shared(item) for key, item in value.items()}
    if kind is list:
        return [_shared(item) for item in value]
    return value
