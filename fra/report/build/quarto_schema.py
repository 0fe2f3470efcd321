"""Quarto's published YAML schema (vendored in ``vendor/quarto-schema/``, see its README.md) and a validator for
the part of its schema language the paper's options use: the Quarto route's options checked without Quarto.

Quarto describes every option as an entry ``{name, schema, tags: {formats, contexts}, disabled}`` in
``document-*.yml`` (front matter and ``_quarto.yml``), ``cell-*.yml`` (``#|`` cell options) and
``project.yml``; schemas are built from ``boolean``, ``string``, ``number``, ``path``, ``object``,
``enum``, ``anyOf``, ``arrayOf``, ``maybeArrayOf``, ``record`` and ``ref`` (to ``definitions.yml``).
A construct this validator does not know is an error, not a pass.
"""

from __future__ import annotations

from pathlib import Path

import yaml

FOLDER = "vendor/quarto-schema"  # the vendored schema, relative to the repository root
META = {"description", "completions", "hidden", "default", "errorDescription", "errorMessage", "tags",
        "additionalCompletions", "namingConvention", "propertyNames", "id"}
TYPES = {"boolean": (bool,), "string": (str,), "path": (str,), "number": (int, float), "object": (dict,),
         "null": (type(None),)}


class Schema:
    def __init__(self, folder: Path):
        """The schema files in ``folder`` (the repository's ``FOLDER``)."""
        def entries(pattern: str) -> dict[str, list[dict]]:
            out: dict[str, list[dict]] = {}
            for file in sorted(folder.glob(pattern)):
                for e in yaml.safe_load(file.read_text()) or []:
                    if isinstance(e, dict) and "name" in e:
                        out.setdefault(e["name"], []).append(e)
            return out

        self.document, self.cell = entries("document-*.yml"), entries("cell-*.yml")
        self.project = next(e["schema"] for e in yaml.safe_load((folder / "project.yml").read_text())
                            if e.get("name") == "project")
        self.definitions = {e["id"]: e for e in yaml.safe_load((folder / "definitions.yml").read_text()) if "id" in e}
        self.aliases = yaml.safe_load((folder / "format-aliases.yml").read_text())["aliases"]

    def expand(self, formats: list[str]) -> set[str]:
        out: set[str] = set()
        for f in formats:
            out |= self.expand(self.aliases[f[1:]]) if f.startswith("$") else {f}
        return out

    def allows(self, entry: dict, fmt: str) -> bool:
        """Whether option ``entry`` applies to output format ``fmt`` (its ``tags.formats``, ``disabled``)."""
        listed = (entry.get("tags") or {}).get("formats")
        if listed:
            plus = [f for f in listed if not f.startswith("!")]
            minus = self.expand([f[1:] for f in listed if f.startswith("!")])
            if (plus and fmt not in self.expand(plus)) or fmt in minus:
                return False
        return fmt not in self.expand(entry.get("disabled") or [])

    def errors(self, value, schema, where: str) -> list[str]:
        """Why ``value`` does not satisfy ``schema`` (empty: it does)."""
        if isinstance(schema, str):
            if schema == "any":
                return []
            if schema not in TYPES:
                raise ValueError(f"{where}: schema type {schema!r} not supported by this validator")
            ok = isinstance(value, TYPES[schema]) and not (schema == "number" and isinstance(value, bool))
            return [] if ok else [f"{where}: {value!r} is not a {schema}"]
        keys = set(schema) - META
        if keys == {"schema"}:
            return self.errors(value, schema["schema"], where)
        if len(keys) != 1:
            raise ValueError(f"{where}: schema {sorted(keys)} not supported by this validator")
        (kind,) = keys
        body = schema[kind]
        if kind in ("object", "record"):
            return self._object(value, body if kind == "object" else {"properties": body, "closed": True}, where)
        if kind in TYPES or kind == "any":  # e.g. `string: {completions: ...}`
            return self.errors(value, kind, where)
        if kind == "enum":
            values = body["values"] if isinstance(body, dict) else body
            return [] if value in values else [f"{where}: {value!r} is not one of {values}"]
        if kind == "anyOf":
            found = [self.errors(value, s, where) for s in body]
            return [] if any(not e for e in found) else [f"{where}: {value!r} matches none of its schemas"]
        if kind in ("ref", "resolveRef"):
            return self.errors(value, self.definitions[body], where)
        if kind == "arrayOf":
            if not isinstance(value, list):
                return [f"{where}: {value!r} is not a list"]
            return [e for i, v in enumerate(value) for e in self.errors(v, body, f"{where}[{i}]")]
        if kind == "maybeArrayOf":
            return self.errors(value, {"anyOf": [body, {"arrayOf": body}]}, where)
        raise ValueError(f"{where}: schema construct {kind!r} not supported by this validator")

    def _object(self, value, body: dict, where: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{where}: {value!r} is not a mapping"]
        if set(body) - META - {"properties", "closed", "required"}:
            raise ValueError(f"{where}: object schema {sorted(body)} not supported by this validator")
        props = body.get("properties") or {}
        out = [f"{where}.{k}: not an option here" for k in value if body.get("closed") and k not in props]
        required = list(props) if body.get("required") == "all" else body.get("required") or []
        out += [f"{where}.{k}: required" for k in required if k not in value]
        return out + [e for k, v in value.items() if k in props for e in self.errors(v, props[k], f"{where}.{k}")]

    def option(self, table: dict[str, list[dict]], name: str, value, where: str, fmt: str | None = None) -> list[str]:
        """Errors of one option: unknown, not for format ``fmt``, or a value its schema refuses."""
        found = [e for e in table.get(name, []) if fmt is None or self.allows(e, fmt)]
        if not found:
            known = "known but not for format " + fmt if table.get(name) and fmt else "not a Quarto option"
            return [f"{where}: {known}"]
        checks = [self.errors(value, e["schema"], where) for e in found]
        return [] if any(not c for c in checks) else checks[0]

    def document_options(self, meta: dict, where: str) -> list[str]:
        """``_quarto.yml`` or front matter: project, execute, format options per format, the rest as metadata."""
        out = []
        for key, value in meta.items():
            if key == "project":
                out += self.errors(value, self.project, f"{where}.project")
            elif key == "format":
                for fmt, options in value.items():
                    for name, v in (options or {}).items():
                        out += self.option(self.document, name, v, f"{where}.format.{fmt}.{name}", fmt)
            elif key == "execute":
                for name, v in value.items():
                    execute = {n: [e for e in es if "document-execute" in ((e.get("tags") or {}).get("contexts") or [])]
                               for n, es in {**self.document, **self.cell}.items()}
                    out += self.option(execute, name, v, f"{where}.execute.{name}")
            else:
                out += self.option(self.document, key, value, f"{where}.{key}")
        return out

    def cell_options(self, options: dict, where: str) -> list[str]:
        return [e for name, v in options.items() for e in self.option(self.cell, name, v, f"{where} #| {name}")]
