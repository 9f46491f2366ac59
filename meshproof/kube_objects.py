"""Kubernetes objects as plain data: parse manifests, name them, and label them as meshproof's.

No cluster access here. `Cluster.apply` uses these so every object the suite creates can be found again
by label: by the artifacts plugin when a test fails, and by `meshproof cleanup` after a run.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

Obj = dict[str, Any]

RUN_ID_LABEL = "meshproof.io/run-id"
TEST_ID_LABEL = "meshproof.io/test-id"
FIELD_MANAGER = "meshproof"

# Kubernetes label values: at most 63 characters, alphanumerics plus '-', '_', '.', alphanumeric at both ends.
_LABEL_VALUE_MAX = 63
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_VALUE_BAD_CHARS = re.compile(r"[^-A-Za-z0-9_.]+")
_HASH_LEN = 10


class ManifestError(ValueError):
    """A manifest that cannot be applied as given; the message names the document and what is wrong."""


@dataclass(frozen=True)
class ObjectRef:
    """Enough to find one object again; prints the way people write it: `Deployment istio-system/istiod`."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"


def ref_of(obj: Mapping[str, Any]) -> ObjectRef:
    meta = obj.get("metadata") or {}
    return ObjectRef(
        api_version=str(obj.get("apiVersion", "")),
        kind=str(obj.get("kind", "")),
        name=str(meta.get("name", "")),
        namespace=meta.get("namespace") or None,
    )


def label_value(raw: str) -> str:
    """`raw` as a valid label value; ids that are too long or carry other characters get a hash suffix.

    The hash keeps two different long ids from colliding after truncation, and makes the mapping stable,
    so the artifacts plugin and `cleanup --run-id` compute the same selector as `apply` did.
    """
    if len(raw) <= _LABEL_VALUE_MAX and _LABEL_VALUE_RE.match(raw):
        return raw
    digest = hashlib.sha256(raw.encode()).hexdigest()[:_HASH_LEN]
    cleaned = _LABEL_VALUE_BAD_CHARS.sub("-", raw).strip("-_.")
    prefix = cleaned[: _LABEL_VALUE_MAX - _HASH_LEN - 1].rstrip("-_.")
    return f"{prefix}-{digest}" if prefix else digest


def meshproof_labels(run_id: str, test_id: str | None = None) -> dict[str, str]:
    labels = {RUN_ID_LABEL: label_value(run_id)}
    if test_id:
        labels[TEST_ID_LABEL] = label_value(test_id)
    return labels


def selector_for_run(run_id: str) -> str:
    return f"{RUN_ID_LABEL}={label_value(run_id)}"


def selector_for_test(test_id: str) -> str:
    return f"{TEST_ID_LABEL}={label_value(test_id)}"


ANY_RUN_SELECTOR = RUN_ID_LABEL  # "has the label", whatever the run


def with_labels(obj: Mapping[str, Any], labels: Mapping[str, str]) -> Obj:
    """A copy of `obj` with `labels` merged into metadata.labels (ours win over the manifest's)."""
    labelled: Obj = copy.deepcopy(dict(obj))
    meta = labelled.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise ManifestError(f"{ref_of(obj)}: metadata must be a mapping")
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    return labelled


def parse_documents(docs: str | Sequence[Mapping[str, Any]]) -> list[Obj]:
    """Objects from multi-document YAML (or already-parsed dicts): empty documents skipped, Lists expanded."""
    if isinstance(docs, str):
        try:
            raw = [d for d in yaml.safe_load_all(docs) if d is not None]
        except yaml.YAMLError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ManifestError(f"manifest is not valid YAML: {first}") from None
    else:
        raw = list(docs)
    objects: list[Obj] = []
    for index, doc in enumerate(raw, start=1):
        objects.extend(_expand(doc, f"document {index}"))
    return objects


def _expand(doc: object, where: str) -> Iterator[Obj]:
    if not isinstance(doc, Mapping):
        raise ManifestError(
            f"{where}: expected a mapping with apiVersion/kind/metadata, got {type(doc).__name__}"
        )
    kind = str(doc.get("kind", ""))
    if kind == "List" or (kind.endswith("List") and isinstance(doc.get("items"), list)):
        for i, item in enumerate(doc.get("items") or [], start=1):
            yield from _expand(item, f"{where} item {i}")
        return
    missing = [f for f in ("apiVersion", "kind") if not doc.get(f)]
    if not (doc.get("metadata") or {}).get("name"):
        missing.append("metadata.name")
    if missing:
        raise ManifestError(f"{where} ({kind or 'no kind'}): missing {', '.join(missing)}")
    yield copy.deepcopy(dict(doc))
