"""MkDocs hooks of the documentation site (mkdocs.yml, `hooks:`).

1. The configuration reference. On the page holding the marker `<!-- config-reference -->`
   (docs/configuration.md) the marker is replaced by tables generated from the pydantic schema
   (tasks/schema.py): for every section of `Config`, and every model nested in one
   (`problems.curriculum`, `sampling.agents[]`, `sampling.specialists[]`), the section's
   docstring and one row per key with its type, its default and its docstring (the schema sets
   `use_attribute_docstrings`, so pydantic holds each field's docstring as its description). The
   reference is therefore never out of date with the code, and a page without the marker, or a
   section without keys, fails the build.

2. Repository files outside docs/. A page may link to a file of the repository by its relative
   path from the page (`../benchmarks/results/.../scores.png`), which is what GitHub follows. Such
   a target is added to the site under `repo/<path>`, so MkDocs resolves and checks the link like
   any other: a missing file is a broken link, and `--strict` fails on it.
"""

from __future__ import annotations

import inspect
import json
import posixpath
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, InclusionLevel

MARKER = "<!-- config-reference -->"
CONFIG_PAGE = "configuration.md"

_LINK = re.compile(r"\]\((\.\./[^)\s#]+)(?:#[^)\s]*)?\)")


def _root(config) -> Path:
    return Path(config.config_file_path).resolve().parent


def on_config(config):
    # The reference imports the project; make the checkout importable even without the
    # editable install (a fresh clone's `mkdocs build` before `make setup`).
    root = str(_root(config))
    if root not in sys.path:
        sys.path.insert(0, root)
    return config


# ---------------------------------------------------------------------------------------------
# repository files linked from pages
# ---------------------------------------------------------------------------------------------


class _RepoFile(File):
    """A repository file outside docs/, copied as is (a markdown file too: it is not a page)."""

    def is_documentation_page(self) -> bool:
        return False

    def is_static_page(self) -> bool:
        return False


def on_files(files, config):
    docs = Path(config.docs_dir).resolve()
    root = _root(config)
    for page in sorted(docs.rglob("*.md")):
        src_uri = page.relative_to(docs).as_posix()
        for target in _LINK.findall(page.read_text(encoding="utf-8")):
            uri = posixpath.normpath(posixpath.join(posixpath.dirname(src_uri), target))
            path = (docs / uri).resolve()
            if not uri.startswith("../") or files.get_file_from_path(uri) is not None:
                continue
            if not path.is_file() or root not in path.parents or docs in path.parents:
                continue  # left to MkDocs, which reports the broken link
            files.append(_RepoFile(uri, str(docs), config.site_dir, config.use_directory_urls,
                                   dest_uri="repo/" + path.relative_to(root).as_posix(),
                                   inclusion=InclusionLevel.INCLUDED))
    return files


# ---------------------------------------------------------------------------------------------
# the configuration reference
# ---------------------------------------------------------------------------------------------


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, config_reference())
    if page.file.src_uri == CONFIG_PAGE:
        raise PluginError(f"{CONFIG_PAGE} has lost its marker {MARKER}: the generated "
                          "configuration reference would be missing")
    return markdown


def on_serve(server, config, builder):
    # `mkdocs serve` rebuilds when the schema changes, not only when a page does.
    server.watch(str(_root(config) / "tasks" / "schema.py"))
    return server


def _model(annotation: Any):
    """The pydantic model a field holds (alone, in a list or optional), else None."""
    from pydantic import BaseModel

    candidates = [annotation, *typing.get_args(annotation)]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _type(annotation: Any) -> str:
    """A field's type in words, without `|` (a table cell separator)."""
    origin = typing.get_origin(annotation)
    if annotation is type(None):
        return "`None`"
    if origin is typing.Literal:
        return " or ".join(f"`{json.dumps(v)}`" for v in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(arg) for arg in typing.get_args(annotation))
    return f"`{_code(annotation)}`"


def _code(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(_code(a) for a in typing.get_args(annotation))}]"
    if annotation is Any:
        return "Any"
    return getattr(annotation, "__name__", str(annotation))


def _default(field) -> str:
    from pydantic import BaseModel

    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "its own defaults (below)"
    if isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
        names = [getattr(v, "name", None) for v in value]
        return ", ".join(f"`{n}`" for n in names) + " (below)"
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _cell(text: str) -> str:
    text = " ".join(inspect.cleandoc(text).split())
    return text.replace("|", "\\|")


def _slug(text: str) -> str:
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", text).strip().lower())


def _section(model, key: str, level: int, out: list[str]) -> None:
    fields = model.model_fields
    if not fields:
        raise PluginError(f"configuration section {key!r} ({model.__name__}) has no keys")
    out += [f"{'#' * level} `{key}`", ""]
    doc = inspect.getdoc(model)
    if doc:
        out += [doc, ""]
    out += ["| key | type | default | description |", "|---|---|---|---|"]
    nested = []
    for name, field in fields.items():
        if not field.description:
            raise PluginError(f"{model.__name__}.{name} has no docstring: every configuration "
                              "key is documented in tasks/schema.py")
        sub = _model(field.annotation)
        dotted = f"{key}.{name}"
        if sub is not None:
            child = dotted + ("[]" if typing.get_origin(field.annotation) is list else "")
            nested.append((sub, child))
            type_ = f"[{_type(field.annotation)}](#{_slug(child)})"
        else:
            type_ = _type(field.annotation)
        out.append(f"| `{dotted}` | {type_} | {_default(field)} | {_cell(field.description)} |")
    out.append("")
    for sub, child in nested:
        _section(sub, child, level + 1, out)


def config_reference() -> str:
    from tasks.schema import SECTIONS, TRAINING_OWNED_DPO_KEYS, Config

    out: list[str] = []
    for section in SECTIONS:
        field = Config.model_fields[section]
        _section(field.annotation, section, 3, out)
        if section == "training":
            out += ["Keys `training.dpo` may not hold (`TRAINING_OWNED_DPO_KEYS`), and what sets "
                    "each:", "", "| key | set by |", "|---|---|"]
            out += [f"| `{key}` | {_cell(why)} |" for key, why in TRAINING_OWNED_DPO_KEYS.items()]
            out.append("")
    return "\n".join(out)
