"""Labels on what we launch, the same on every provider (no I/O, imports nothing of ours).

A label is a ``key=value`` pair given in ``LaunchRequest.labels`` and read back in
``GPUInstance.labels``. How it travels is the provider's choice, declared by one class
attribute, ``label_transport``:

- ``LabelTransport.TAGS``: the vendor's own tags (Lambda). The provider's launch flow sends
  ``request.labels`` as tags and its mapping reads them back into ``GPUInstance.labels``.
- ``LabelTransport.NAME``: the labels are encoded into the instance name (vendors without
  tags: Paperspace, RunPod). The core does it around the provider's flows: the launch flow
  sees a request whose ``name`` is the encoded name and whose ``labels`` are empty, and every
  instance the provider returns is decoded (``name`` back to what you asked for, ``labels``
  filled in). Nothing provider-specific is needed.
- ``LabelTransport.NONE``: launches with labels are refused (``UnsupportedFeatureError``).

The rules (checked when a ``LaunchRequest`` is built, before any network call), chosen so
that every transport carries every label unchanged:

- at most ``MAX_LABELS`` labels;
- a key is 2 to 32 characters: a lower-case letter, then lower-case letters, digits and
  ``-`` (Lambda's tag keys need at least two characters);
- a value is 0 to 63 characters of letters, digits, ``-`` and ``_``.

The name encoding is ``<name>.gpl.<key>_<value>.<key>_<value>`` (keys sorted), or
``gpl.<key>_<value>...`` without a name: only letters, digits, ``.``, ``_`` and ``-``, which
instance names accept everywhere. A key has no ``_`` and a value no ``.``, so it decodes
back exactly. ``demo`` with ``{"team": "ml", "owner": "ada"}`` becomes
``demo.gpl.owner_ada.team_ml``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping

__all__ = [
    "MANAGED_BY",
    "MAX_LABELS",
    "LabelTransport",
    "check_labels",
    "decode_name",
    "encode_name",
    "matches",
    "parse_label",
]

MAX_LABELS = 8
#: The label ``gpu-providers launch`` puts on what it launches (and ``orphans`` looks for).
MANAGED_BY = {"managed-by": "gpu-providers"}

_KEY = re.compile(r"^[a-z][a-z0-9-]{1,31}$")
_VALUE = re.compile(r"^[A-Za-z0-9_-]{0,63}$")
_MARKER = "gpl"


class LabelTransport(str, enum.Enum):
    """How a provider carries ``LaunchRequest.labels`` (a provider class attribute)."""

    TAGS = "tags"
    NAME = "name"
    NONE = "none"


def check_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """``labels`` as a dict, or ``ValueError`` saying which rule a label breaks."""
    if len(labels) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels, got {len(labels)}")
    for key, value in labels.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise ValueError(
                f"label key {key!r}: 2-32 characters, a lower-case letter then lower-case "
                "letters, digits and '-'"
            )
        if not isinstance(value, str) or not _VALUE.match(value):
            raise ValueError(
                f"label {key!r}: the value has at most 63 characters: letters, digits, '-', '_'"
            )
    return dict(labels)


def parse_label(text: str) -> tuple[str, str]:
    """``"key=value"`` -> ``("key", "value")`` (checked like a launch's labels)."""
    key, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"label {text!r}: write it as key=value")
    check_labels({key: value})
    return key, value


def encode_name(name: str | None, labels: Mapping[str, str]) -> str | None:
    """The instance name that carries ``labels`` (``name`` itself without labels)."""
    if not labels:
        return name
    if name is not None and f".{_MARKER}." in f".{name}.":
        raise ValueError(f"name {name!r} must not contain the label marker '.{_MARKER}.'")
    pairs = [f"{key}_{value}" for key, value in sorted(check_labels(labels).items())]
    return ".".join([*([name] if name else []), _MARKER, *pairs])


def decode_name(raw: str | None) -> tuple[str | None, dict[str, str]]:
    """``(name, labels)`` from an instance name made by ``encode_name``; a name without
    labels comes back as it is, with no labels."""
    if not raw:
        return raw, {}
    parts = raw.split(".")
    for index in range(len(parts) - 1, -1, -1):
        if parts[index] != _MARKER:
            continue
        labels: dict[str, str] = {}
        for pair in parts[index + 1 :]:
            key, sep, value = pair.partition("_")
            if not sep or not _KEY.match(key) or not _VALUE.match(value) or key in labels:
                return raw, {}
            labels[key] = value
        if not labels:
            return raw, {}
        return (".".join(parts[:index]) or None), labels
    return raw, {}


def matches(labels: Mapping[str, str], wanted: Mapping[str, str] | None) -> bool:
    """Whether ``labels`` include every ``key=value`` of ``wanted``."""
    return not wanted or all(labels.get(key) == value for key, value in wanted.items())
