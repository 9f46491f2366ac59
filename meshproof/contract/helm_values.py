"""Helm values of the Istio charts checked against each chart's own values.yaml (and values.schema.json).

Helm itself ignores unknown keys unless a chart ships values.schema.json (of Istio's charts only `gateway`
does), so a misspelt or misplaced key silently does nothing. The check here is the chart's key structure:
every rendered key must exist in the chart's defaults (`_internal_defaults_do_not_set` since Istio 1.24),
scalar types must match the default's type, and an empty-map / null default marks a free-form subtree
(`env: {}`, `podAnnotations: {}`). The `profile`, `platform` and `compatibilityVersion` selectors are
checked the way the chart's zzz_profile.yaml template checks them: a matching files/profile-*.yaml must exist.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from meshproof.contract.checker import Finding

# Keys the charts' zzz_profile.yaml template reads before merging over the defaults.
PROFILE_SELECTORS = {"profile": "profile-{}.yaml", "platform": "profile-platform-{}.yaml",
                     "compatibilityVersion": "profile-compatibility-version-{}.yaml"}  # fmt: skip
GLOBAL_PROFILE_SELECTORS = {"profile": "profile-{}.yaml", "platform": "profile-platform-{}.yaml"}


def chart_defaults(chart_dir: Path) -> dict[str, Any]:
    values = yaml.safe_load((chart_dir / "values.yaml").read_text()) or {}
    defaults = dict(values.pop("_internal_defaults_do_not_set", {}) or {})
    defaults.update(values)
    return defaults


def check_chart_values(chart_dir: Path, values: dict[str, Any]) -> list[Finding]:
    defaults = chart_defaults(chart_dir)
    findings = _check_selectors(chart_dir, values)
    rest = {k: v for k, v in values.items() if k not in PROFILE_SELECTORS}
    if isinstance(rest.get("global"), dict):  # global.profile / global.platform are selectors too
        rest["global"] = {k: v for k, v in rest["global"].items() if k not in GLOBAL_PROFILE_SELECTORS}
    if "global" not in defaults and isinstance(rest.get("global"), dict):
        # A chart without `global` in its values.yaml (ztunnel) flattens `.Values.global` onto its top-level
        # defaults in zzz_profile.yaml ("Flatten globals", istio/istio@1.27.9 manifests/charts/ztunnel/
        # templates/zzz_profile.yaml), so a global key must be one of its top-level keys.
        flattened = rest.pop("global")
        findings += [
            Finding(f"global.{f.path}", f.message) for f in _compare(flattened, defaults, "") if flattened
        ]
    findings += _compare(rest, defaults, "")
    schema_file = chart_dir / "values.schema.json"
    if schema_file.is_file():
        findings += _check_schema(schema_file, values)
    return findings


def _check_selectors(chart_dir: Path, values: dict[str, Any]) -> list[Finding]:
    findings: list[Finding] = []
    raw_global = values.get("global")
    global_values: dict[str, Any] = raw_global if isinstance(raw_global, dict) else {}
    candidates = [(key, values.get(key), pattern) for key, pattern in PROFILE_SELECTORS.items()]
    candidates += [(f"global.{k}", global_values.get(k), p) for k, p in GLOBAL_PROFILE_SELECTORS.items()]
    for path, value, pattern in candidates:
        if value in (None, ""):
            continue
        if not (chart_dir / "files" / pattern.format(value)).is_file():
            findings.append(Finding(path, f"the chart has no files/{pattern.format(value)}; Helm fails with "
                                          f"'unknown {path.split('.')[-1]} {value}'"))  # fmt: skip
    return findings


def _compare(value: Any, default: Any, path: str) -> list[Finding]:
    if default is None:
        return []  # a null default is a free-form slot (e.g. `tag:`)
    if isinstance(default, dict):
        if not isinstance(value, dict):
            return [Finding(path, f"expected a map (the chart default is a map), got {_type_name(value)}")]
        if not default:
            return []  # `{}` default: free-form map such as env or podAnnotations
        findings: list[Finding] = []
        for key in sorted(value):
            child = f"{path}.{key}" if path else key
            if key not in default:
                findings.append(
                    Finding(child, "unknown key: not in the chart's values.yaml (Helm ignores it)")
                )
            else:
                findings += _compare(value[key], default[key], child)
        return findings
    if isinstance(default, list):
        return [] if isinstance(value, list) else [Finding(path, f"expected a list, got {_type_name(value)}")]
    if isinstance(default, bool):
        return (
            [] if isinstance(value, bool) else [Finding(path, f"expected a boolean, got {_type_name(value)}")]
        )
    if isinstance(default, int | float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [Finding(path, f"expected a number, got {_type_name(value)}")]
    if isinstance(default, str):
        # String defaults also take numbers/quantities in practice (tag, resources): check structure only.
        ok = not isinstance(value, dict | list)
        return (
            []
            if ok
            else [
                Finding(path, f"expected a scalar (the chart default is a string), got {_type_name(value)}")
            ]
        )
    return []


def _check_schema(schema_file: Path, values: dict[str, Any]) -> list[Finding]:
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [
        Finding(".".join(str(p) for p in error.absolute_path), f"values.schema.json: {error.message}")
        for error in sorted(validator.iter_errors(values), key=lambda e: list(map(str, e.absolute_path)))
    ]


def env_values_are_strings(values: Any, path: str, why: str) -> list[Finding]:
    """Every value of every `env` map must be a string (istio-facts §1.4: write "true", not true)."""
    findings: list[Finding] = []
    if isinstance(values, dict):
        for key in sorted(values):
            child = f"{path}.{key}" if path else key
            if key == "env" and isinstance(values[key], dict):
                findings += [
                    Finding(f"{child}.{name}", f"env value must be a string, got {_type_name(v)} ({why})")
                    for name, v in sorted(values[key].items())
                    if not isinstance(v, str)
                ]
            else:
                findings += env_values_are_strings(values[key], child, why)
    return findings


def _type_name(value: Any) -> str:
    return {dict: "a map", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)  # fmt: skip
