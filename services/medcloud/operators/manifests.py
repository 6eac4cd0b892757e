"""Offline validation of Region and HospitalSite manifests: the CRDs' own OpenAPI schemas (with
`jsonschema`) and CEL rules (with `cel-python`), giving the verdicts and, as far as it matters, the
wording of a Kubernetes API server, so `medcloudctl validate` and the operator agree with kubectl.

What the API server does and this module copies: null fields are dropped and `default`s applied
before anything is checked; schema errors are reported per field; CEL rules run with `self` bound
to the value they sit on, unless a schema error of the kinds that make the object unreadable
(wrong type, unsupported enum value, missing field, too long, too many) came first; rules that
compare with `oldSelf` only apply to updates and are skipped. `status` is ignored, as the API
server ignores it on create. Unknown fields are reported as kubectl's strict field validation
reports them."""

from __future__ import annotations

import copy
import functools
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml
from celpy import celtypes

GROUP = "medcloud.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CRD_DIR_ENV = "MEDCLOUD_CRD_DIR"
# Kind -> file under the CRD directory.
CRD_FILES = {"Region": "region.yaml", "HospitalSite": "hospitalsite.yaml"}
MANIFEST_SUFFIXES = (".yaml", ".yml")

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME_RULE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character"
)
# Schema errors after which the API server does not run CEL rules: the object may not even have
# the shape the rules were compiled for.
_BLOCKING_KEYWORDS = frozenset({"type", "enum", "required", "maxLength", "maxItems"})
RULES_NOT_CHECKED = (
    "some validation rules were not checked because the object was invalid; correct the "
    "existing errors to complete validation"
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest: the field (as Kubernetes paths it, "spec.systems[1].vcpu"),
    the rule it breaks (a schema keyword, a CEL expression, "unknown field"), and the message an
    API server would give."""

    field: str
    rule: str
    message: str


class ManifestError(Exception):
    """A file that cannot be read as YAML manifests: missing, unparsable, or not mappings."""


# --- CRDs -------------------------------------------------------------------------------------


def crd_directory() -> Path:
    """$MEDCLOUD_CRD_DIR if set (the chart ships the same files elsewhere), else `operators/crds`
    of the repository this module lives in."""
    override = os.environ.get(CRD_DIR_ENV)
    if override:
        return Path(override)
    # services/medcloud/operators/manifests.py -> the repository root is three levels above.
    return Path(__file__).resolve().parents[3] / "operators" / "crds"


def load_crd(kind: str) -> dict[str, Any]:
    """The CustomResourceDefinition of `kind` ("Region" or "HospitalSite"), as a fresh dict."""
    if kind not in CRD_FILES:
        raise ValueError(f"no CRD for kind {kind!r}; known kinds: {', '.join(sorted(CRD_FILES))}")
    return copy.deepcopy(_read_crd(crd_directory() / CRD_FILES[kind]))


@functools.cache
def _read_crd(path: Path) -> dict[str, Any]:
    try:
        crd = yaml.safe_load(path.read_text())
    except OSError as error:
        raise FileNotFoundError(
            f"CRD file {path} cannot be read ({error.strerror}); set {CRD_DIR_ENV} to the "
            "directory holding region.yaml and hospitalsite.yaml"
        ) from error
    if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
        raise ValueError(f"{path} holds no CustomResourceDefinition")
    return crd


def _version_schema(crd: dict[str, Any]) -> dict[str, Any]:
    for version in crd["spec"]["versions"]:
        if version["name"] == VERSION:
            return version["schema"]["openAPIV3Schema"]
    raise ValueError(f"CRD {crd['metadata']['name']} serves no version {VERSION}")


# --- Manifest files -----------------------------------------------------------------------------


def manifest_files(path: Path) -> list[Path]:
    """`path` itself, or the YAML files of a directory (not its subdirectories), sorted by name."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix in MANIFEST_SUFFIXES)
    if not path.is_file():
        raise ManifestError(f"{path}: no such file or directory")
    return [path]


def load_documents(path: Path) -> list[dict[str, Any]]:
    """Every YAML document in a file, or in the YAML files of a directory; empty documents are
    left out. ManifestError when a file cannot be read or holds something other than mappings."""
    documents: list[dict[str, Any]] = []
    for file in manifest_files(path):
        try:
            loaded = list(yaml.safe_load_all(file.read_text()))
        except OSError as error:
            raise ManifestError(f"{file}: {error.strerror}") from error
        except yaml.YAMLError as error:
            raise ManifestError(f"{file}: not valid YAML: {error}") from error
        for number, document in enumerate(loaded, start=1):
            if document is None:
                continue
            if not isinstance(document, dict):
                raise ManifestError(
                    f"{file}: document {number} is a {type(document).__name__}, not a mapping"
                )
            documents.append(document)
    return documents


# --- Validation ---------------------------------------------------------------------------------


def validate_manifest(document: dict[str, Any]) -> list[Problem]:
    """Every problem the API server would find in a Region or HospitalSite manifest; an empty list
    means it would be accepted (a kubeconfig Secret that does not exist is the operator's to
    report, not this)."""
    api_version, kind = document.get("apiVersion"), document.get("kind")
    if api_version != API_VERSION:
        return [
            Problem(
                "apiVersion",
                "apiVersion",
                f"apiVersion: Unsupported value: {_go(api_version)}: supported values: "
                f'"{API_VERSION}"',
            )
        ]
    if kind not in CRD_FILES:
        supported = ", ".join(f'"{k}"' for k in sorted(CRD_FILES))
        return [
            Problem(
                "kind",
                "kind",
                f"kind: Unsupported value: {_go(kind)}: supported values: {supported}",
            )
        ]
    crd_path = crd_directory() / CRD_FILES[kind]
    schema = _version_schema(_read_crd(crd_path))
    obj = {key: value for key, value in document.items() if key != "status"}
    problems = list(_metadata_problems(obj.get("metadata")))
    problems += _unknown_fields(obj, schema, "")
    obj = _defaulted(obj, schema)
    schema_problems = _schema_problems(obj, crd_path)
    problems += schema_problems
    if any(p.rule in _BLOCKING_KEYWORDS for p in schema_problems):
        problems.append(Problem("", "x-kubernetes-validations", RULES_NOT_CHECKED))
    else:
        problems += _cel_problems(obj, schema, "")
    return problems


def _metadata_problems(metadata: object) -> Iterator[Problem]:
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not name:
        yield Problem(
            "metadata.name",
            "required",
            "metadata.name: Required value: name or generateName is required",
        )
    elif not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        yield Problem(
            "metadata.name",
            "pattern",
            f"metadata.name: Invalid value: {_go(name)}: {_NAME_RULE}",
        )


def _unknown_fields(value: object, schema: dict[str, Any], path: str) -> Iterator[Problem]:
    """Fields the schema does not declare, which kubectl's strict validation refuses."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict) and "properties" in schema:
        for key, child in value.items():
            child_path = _child(path, key)
            if key not in schema["properties"]:
                yield Problem(child_path, "unknown field", f'unknown field "{child_path}"')
            else:
                yield from _unknown_fields(child, schema["properties"][key], child_path)
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, child in value.items():
            yield from _unknown_fields(child, schema["additionalProperties"], _child(path, key))
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from _unknown_fields(item, schema["items"], f"{path}[{index}]")


def _defaulted(value: Any, schema: dict[str, Any]) -> Any:
    """A copy of `value` with null fields pruned (unless nullable) and defaults filled in, as the
    API server does before validating."""
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        result = {}
        for key, child in value.items():
            child_schema = properties.get(key, schema.get("additionalProperties"))
            if not isinstance(child_schema, dict):
                result[key] = child
            elif child is None and key in properties and not child_schema.get("nullable"):
                continue
            else:
                result[key] = _defaulted(child, child_schema)
        for key, child_schema in properties.items():
            if key not in result and "default" in child_schema:
                result[key] = _defaulted(copy.deepcopy(child_schema["default"]), child_schema)
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_defaulted(item, schema["items"]) for item in value]
    return value


# --- The OpenAPI schema, through jsonschema -----------------------------------------------------


@functools.cache
def _json_schema_validator(crd_path: Path) -> jsonschema.Draft4Validator:
    # OpenAPI v3.0 schemas are JSON Schema draft 4 plus extensions: boolean exclusive bounds, and
    # integers that are never 1.0.
    return jsonschema.Draft4Validator(_to_json_schema(_version_schema(_read_crd(crd_path))))


def _to_json_schema(schema: Any) -> Any:
    """The OpenAPI subset Kubernetes allows, as draft-4 JSON Schema: `x-kubernetes-*` extensions
    dropped (list types are checked separately), `nullable` made a null type."""
    if isinstance(schema, list):
        return [_to_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {
        key: _to_json_schema(value)
        for key, value in schema.items()
        if not key.startswith("x-kubernetes-") and key != "nullable"
    }
    if "properties" in schema:
        converted["properties"] = {
            key: _to_json_schema(value) for key, value in schema["properties"].items()
        }
    if schema.get("x-kubernetes-int-or-string"):
        converted.pop("type", None)
        converted["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and "type" in converted:
        converted["type"] = [converted["type"], "null"]
        if "enum" in converted:
            converted["enum"] = [*converted["enum"], None]
    return converted


def _schema_problems(obj: dict[str, Any], crd_path: Path) -> list[Problem]:
    schema = _version_schema(_read_crd(crd_path))
    problems: list[Problem] = []
    # In the schema's order of properties: the order people read the manifest in.
    for error in _json_schema_validator(crd_path).iter_errors(obj):
        problems += _problems_from(error)
    problems += _list_type_problems(obj, schema, "")
    return list(dict.fromkeys(problems))


def _problems_from(error: jsonschema.ValidationError) -> list[Problem]:
    """The API server's wording of one jsonschema error."""
    path = _path(error.absolute_path)
    keyword, bound, value = error.validator, error.validator_value, error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    if keyword == "required":
        return [
            Problem(_child(path, name), "required", f"{_child(path, name)}: Required value")
            for name in bound
            if isinstance(value, dict) and name not in value
        ]
    # Most errors read "<path>: Invalid value: <value>: <path> in body should ...".
    invalid = f"{path}: Invalid value: {_go(value)}: {path} in body"
    if keyword == "enum":
        supported = ", ".join(_go(v) for v in bound)
        message = f"{path}: Unsupported value: {_go(value)}: supported values: {supported}"
    elif keyword == "type":
        actual = _json_type(value)
        message = (
            f'{path}: Invalid value: "{actual}": {path} in body must be of type {bound}: "{actual}"'
        )
    elif keyword in ("maximum", "minimum"):
        exclusive = schema.get(f"exclusive{keyword.capitalize()}") is True
        relation = "less than" if keyword == "maximum" else "greater than"
        relation += "" if exclusive else " or equal to"
        message = f"{invalid} should be {relation} {_go(bound)}"
    elif keyword == "maxLength":
        message = f"{path}: Too long: may not be more than {bound} bytes"
    elif keyword == "minLength":
        message = f"{invalid} should be at least {bound} chars long"
    elif keyword == "pattern":
        message = f"{invalid} should match '{bound}'"
    elif keyword == "maxItems":
        message = f"{path}: Too many: {len(value)}: must have at most {bound} items"
    elif keyword == "minItems":
        count = len(value)
        message = (
            f"{path}: Invalid value: {count}: {path} in body should have at least {bound} items"
        )
    else:
        message = f"{path}: Invalid value: {_go(value)}: {error.message}"
    return [Problem(path, keyword, message)]


def _list_type_problems(value: Any, schema: dict[str, Any], path: str) -> Iterator[Problem]:
    """Duplicates in `x-kubernetes-list-type: set` and `map` lists."""
    if isinstance(value, dict):
        for key, child in value.items():
            child_schema = schema.get("properties", {}).get(key)
            if isinstance(child_schema, dict):
                yield from _list_type_problems(child, child_schema, _child(path, key))
        return
    if not isinstance(value, list):
        return
    list_type = schema.get("x-kubernetes-list-type")
    keys = schema.get("x-kubernetes-list-map-keys", [])
    seen: list[Any] = []
    for index, item in enumerate(value):
        if list_type == "set":
            identity = item
        elif list_type == "map" and isinstance(item, dict):
            identity = {key: item.get(key) for key in keys}
        else:
            identity = None
        if identity is not None and identity in seen:
            yield Problem(
                f"{path}[{index}]",
                f"x-kubernetes-list-type: {list_type}",
                f"{path}[{index}]: Duplicate value: {_go(identity)}",
            )
        seen.append(identity)
        if isinstance(schema.get("items"), dict):
            yield from _list_type_problems(item, schema["items"], f"{path}[{index}]")


# --- CEL rules, through cel-python --------------------------------------------------------------

_REASONS = {
    "FieldValueRequired": "Required value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueInvalid": "Invalid value",
}


@functools.cache
def _cel_program(expression: str) -> celpy.Runner:
    environment = celpy.Environment()
    return environment.program(environment.compile(expression))


def _cel_problems(value: Any, schema: dict[str, Any], path: str) -> list[Problem]:
    """Every failing `x-kubernetes-validations` rule, from the root down."""
    problems: list[Problem] = []
    if value is None:
        return problems
    for rule in schema.get("x-kubernetes-validations", ()):
        if "oldSelf" in rule["rule"]:
            continue
        problem = _check_rule(rule, value, schema, path)
        if problem:
            problems.append(problem)
    if isinstance(value, dict):
        for key, child in value.items():
            child_schema = schema.get("properties", {}).get(key, schema.get("additionalProperties"))
            if isinstance(child_schema, dict):
                problems += _cel_problems(child, child_schema, _child(path, key))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            problems += _cel_problems(item, schema["items"], f"{path}[{index}]")
    return problems


def _check_rule(
    rule: dict[str, Any], value: Any, schema: dict[str, Any], path: str
) -> Problem | None:
    activation = {"self": _to_cel(value, schema)}
    field = path + _field_path_suffix(rule.get("fieldPath", ""))
    try:
        passed = _cel_program(rule["rule"]).evaluate(activation)
    except celpy.CELEvalError as error:
        passed = error
    if isinstance(passed, celpy.CELEvalError):
        return Problem(
            path,
            rule["rule"],
            f"{path}: Invalid value: {passed.args[0]} evaluating rule: {rule['rule']}",
        )
    if passed:
        return None
    detail = _rule_message(rule, activation)
    reason = _REASONS.get(rule.get("reason", "FieldValueInvalid"), "Invalid value")
    return Problem(field, rule["rule"], f"{field}: {reason}: {detail}")


def _rule_message(rule: dict[str, Any], activation: dict[str, Any]) -> str:
    if "messageExpression" in rule:
        try:
            message = _cel_program(rule["messageExpression"]).evaluate(activation)
        except celpy.CELEvalError:
            message = None
        # An expression that fails or yields nothing falls back to `message`, as on the server.
        if isinstance(message, str) and message.strip():
            return str(message)
    return rule.get("message") or f"failed rule: {rule['rule']}"


def _field_path_suffix(field_path: str) -> str:
    """A rule's `fieldPath` (".backup.sameCityCentreId", "['a.b']") as a path suffix."""
    parts = re.findall(r"\.([^.\[]+)|\['([^']*)'\]", field_path)
    return "".join(f".{dotted or quoted}" for dotted, quoted in parts)


def _to_cel(value: Any, schema: dict[str, Any]) -> Any:
    """`value` as CEL sees it under `schema`: a `number` is a double even when written as 12."""
    kind = schema.get("type")
    if value is None:
        return None
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        return celtypes.MapType(
            {
                celtypes.StringType(key): _to_cel(
                    child, properties.get(key, schema.get("additionalProperties") or {})
                )
                for key, child in value.items()
            }
        )
    if isinstance(value, list):
        return celtypes.ListType([_to_cel(item, schema.get("items") or {}) for item in value])
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if kind == "number" and isinstance(value, int | float):
        return celtypes.DoubleType(float(value))
    return celpy.json_to_cel(value)


# --- Paths and values as Kubernetes prints them -------------------------------------------------


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _path(parts: Any) -> str:
    path = ""
    for part in parts:
        path = f"{path}[{part}]" if isinstance(part, int) else _child(path, str(part))
    return path


def _go(value: Any) -> str:
    """A value as Go's %v/%q prints it in field errors: strings quoted, numbers bare."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value, ensure_ascii=False)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number" if isinstance(value, float) else "integer"
    return {dict: "object", list: "array", str: "string"}.get(type(value), "null")
