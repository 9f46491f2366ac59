"""Render the YAML templates under manifests/<area>/ into Kubernetes objects (plain dicts).

Templates are Jinja2 with StrictUndefined: a missing variable is an error, never an empty string that
renders a plausible but wrong manifest. Nested values (Helm-style `values:` trees) are passed in as data
and emitted with the `tojson` filter, which is valid YAML.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import yaml

MANIFESTS_DIR = Path(__file__).resolve().parents[2] / "manifests"
# libyaml when available: plans render hundreds of documents and the pure-Python parser is 10x slower.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class TemplateError(ValueError):
    """A template is missing, broken, or did not render to Kubernetes objects."""


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(MANIFESTS_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # YAML, not HTML
    )
    # Compact, key-sorted JSON: deterministic output and no HTML escaping (Jinja's own tojson escapes <>&').
    env.filters["tojson"] = lambda value: json.dumps(value, sort_keys=True, separators=(",", ": "))
    return env


def render(template: str, **context: Any) -> list[dict[str, Any]]:
    """Render `manifests/<template>` (e.g. "sail/istio.yaml.j2") to objects; empty documents are dropped."""
    try:
        text = _environment().get_template(template).render(**context)
    except jinja2.TemplateNotFound:
        raise TemplateError(f"template manifests/{template} does not exist") from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"manifests/{template}: {exc.message}") from None
    try:
        docs = [d for d in yaml.load_all(text, Loader=_LOADER) if d is not None]
    except yaml.YAMLError as exc:
        raise TemplateError(
            f"manifests/{template} rendered invalid YAML: {str(exc).splitlines()[0]}"
        ) from None
    for doc in docs:
        if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
            raise TemplateError(f"manifests/{template} rendered a document without apiVersion/kind")
    return docs


def render_one(template: str, **context: Any) -> dict[str, Any]:
    docs = render(template, **context)
    if len(docs) != 1:
        raise TemplateError(f"manifests/{template} rendered {len(docs)} documents, expected one")
    return docs[0]
