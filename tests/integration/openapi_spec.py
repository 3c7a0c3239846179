"""The providers' published OpenAPI specifications (../shared/specs), as the tests hold requests to them.

`check_requests(spec_files, entries, content_type)` asserts that every journaled request is an
operation of the spec, with only its query parameters, and a body valid against the operation's
request schema. The specs are reference data outside the repository and jsonschema a development
extra: without either the check is left out and the calling test makes its other assertions.
"""

import importlib.util
import json
import re

import yaml

from tests.sandbox.fixture import REPO_ROOT

SPECS = REPO_ROOT.parent / "shared" / "specs"


def resolve_refs(node, document):
    """`node` with every local $ref replaced by what it points at."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = document
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return resolve_refs(target, document)
        return {key: resolve_refs(value, document) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve_refs(item, document) for item in node]
    return node


def load(name):
    text = (SPECS / name).read_text()
    return json.loads(text) if name.endswith(".json") else yaml.safe_load(text)


def operations(spec_files, content_type="application/json"):
    """(METHOD, path regex, request body schema or None, {query parameter: schema}) of every operation."""
    found = []
    for name in spec_files:
        document = load(name)
        for path, item in document["paths"].items():
            pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")
            for method, operation in item.items():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                body = operation.get("requestBody", {}).get("content", {}).get(content_type, {}).get("schema")
                params = [resolve_refs(p, document) for p in operation.get("parameters", [])]
                found.append((method.upper(), pattern, resolve_refs(body, document) if body else None,
                              {p["name"]: p.get("schema", {}) for p in params if p.get("in") == "query"}))
    return found


def operation_of(known, entry):
    """The operation a journaled request is; a literal path (…/domains) wins over a templated one ({id})."""
    matching = sorted((op for op in known if op[0] == entry["method"] and op[1].match(entry["path"])),
                      key=lambda op: op[1].pattern.count("[^/]+"))
    assert matching, "%s %s is no operation of the spec" % (entry["method"], entry["path"])
    return matching[0]


def query_value(text, schema):
    """A query string value as the type its schema declares (a query string carries only text)."""
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        return text  # not a number: the schema check then says so
    if kind == "boolean" and text in ("true", "false"):
        return text == "true"
    return text


def available(spec_files):
    return importlib.util.find_spec("jsonschema") is not None and all((SPECS / name).is_file() for name in spec_files)


def check_requests(spec_files, entries, content_type="application/json"):
    """Assert every entry (sandbox journal) fits the spec; returns False when the check was left out."""
    if not available(spec_files):
        return False
    import jsonschema  # pylint: disable=import-outside-toplevel
    known = operations(spec_files, content_type)
    assert entries
    for entry in entries:
        _method, _pattern, schema, query = operation_of(known, entry)
        assert set(entry["query"]) <= set(query), (entry["path"], entry["query"], query)
        for name, value in entry["query"].items():
            jsonschema.validate(query_value(value, query[name]), query[name])
        if schema is not None:
            if content_type != "application/json":
                assert entry["headers"]["Content-Type"].startswith(content_type), entry
            jsonschema.validate(entry["json"], schema, format_checker=jsonschema.FormatChecker())
    return True
