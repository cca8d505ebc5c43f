r"""The run configuration: one YAML file, a section per stage, every key checked before work starts.

Takes: a preset name ("default", "smoke", "tiny": files under `configs/`) or the path of a YAML
file, plus optional `SECTION.KEY=VALUE` overrides.
Gives: a frozen `tasks.schema.Config` (the schema, with every key documented on its field).
Writes: nothing.

Run alone, from the repository root:

    python -m tasks.config smoke                              # print the resolved config + hashes
    python -m tasks.config my.yaml sampling.top_p=0.9 training.dpo.beta=0.2

The file
--------

A YAML mapping of sections; every section and key is optional and falls back to the default
documented on its field below. Unknown keys are errors (a misspelt key would otherwise be ignored
silently), and so are duplicate keys. A section left empty (`memory:` with every key commented out)
takes its defaults. Numbers such as `5e-5` are read as floats (plain PyYAML would read a string).

Overrides are `SECTION.KEY=VALUE` strings; VALUE is parsed as YAML (`sampling.top_p=0.9`,
`pairs.keep_sft=true`, `problems.train_n=null`, `evaluation.k=[1,2]`). Deeper paths reach into
mappings and lists (`training.dpo.beta=0.2`, `sampling.specialists.1.temperature=0.9`); a list
the file does not set starts from its default.

Every problem with a file is reported at once, one line each, naming the file and the dotted key:

    configs/x.yaml: sampling.top_p: Input should be less than or equal to 1 (got 1.5)
    configs/x.yaml: unknown key 'sampling.temprature' (sampling takes: agents, specialists, …)

"""

from __future__ import annotations

import copy
import difflib
import re
import sys
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from tasks.paths import REPO_ROOT
from tasks.schema import SECTIONS, Config


# ---------------------------------------------------------------------------------------------
# Reading a file
# ---------------------------------------------------------------------------------------------

CONFIG_DIR = REPO_ROOT / "configs"
PRESETS = ("default", "smoke", "tiny", "efficacy", "codeio", "codeio-short", "gpu")


class ConfigError(ValueError):
    """A configuration that cannot be used. One line per problem, each naming the file and the
    dotted key (`configs/x.yaml: sampling.top_p: ...`); `problems` holds the lines without the
    file."""

    def __init__(self, file: str, problems: list[str]) -> None:
        self.file, self.problems = file, list(problems)
        super().__init__("\n".join(f"{file}: {problem}" for problem in self.problems))


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and reads `5e-5` as a float (YAML 1.2 style)."""


def _mapping_without_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False):
    loader.flatten_mapping(node)
    first_line: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            continue  # construct_mapping reports unhashable keys itself
        if key in first_line:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first set on line {first_line[key]})",
                key_node.start_mark)
        first_line[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def _yaml_error(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def config_path(name_or_path: str) -> Path:
    """The file of a preset ("default", "smoke", "tiny" → `<repo>/configs/<name>.yaml`), or the
    given path. A missing file is a ConfigError listing the presets."""
    if name_or_path in PRESETS:
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    else:
        path = Path(name_or_path).expanduser()
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ConfigError(str(path), [f"{what}: give a preset ({', '.join(PRESETS)}, from "
                                      f"{CONFIG_DIR}) or the path of a YAML config file"])
    return path


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config (a path, or a preset name), apply `SECTION.KEY=VALUE` overrides, and
    validate. Every problem found is reported at once in a ConfigError."""
    path = config_path(str(path))
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(file, [f"cannot be read ({err})"]) from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        raise ConfigError(file, [f"not valid YAML: {_yaml_error(err)}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(file, [f"the top level is {_kind(data)}, not a mapping of sections "
                                 f"({', '.join(SECTIONS)})"])
    # `memory:` with every key commented out means "the defaults", not "null".
    data = {key: value for key, value in data.items() if not (key in SECTIONS and value is None)}

    problems: list[str] = []
    overridden: dict[str, str] = {}
    for override in overrides:
        try:
            overridden[_apply_override(data, override)] = override
        except ValueError as err:
            problems.append(str(err))
    if problems:
        raise ConfigError(file, problems)
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(file, _describe(err, overridden)) from None


# -- overrides --------------------------------------------------------------------------------

_OVERRIDE_SHAPE = "expected SECTION.KEY=VALUE with VALUE in YAML, e.g. sampling.top_p=0.9"


def _apply_override(data: dict, text: str) -> str:
    """Set one `a.b.c=value` in `data` (in place); returns the dotted path. Missing mappings and
    lists start from their defaults."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not sep or len(parts) < 2 or not all(parts):
        raise ValueError(f"override {text!r}: {_OVERRIDE_SHAPE}")
    try:
        value = yaml.load(raw, Loader=_Loader)
    except yaml.YAMLError as err:
        raise ValueError(f"override {text!r}: the value {raw!r} is not valid YAML "
                         f"({_yaml_error(err)})") from None

    node: Any = data
    defaults: Any = Config().model_dump(mode="json")
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        here = ".".join(parts[:depth])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ValueError(f"override {text!r}: {here} is a list of {len(node)}; "
                                 f"{part!r} is not an index in it (0 to {len(node) - 1})")
            index: Any = int(part)
        elif isinstance(node, dict):
            index = part
        else:
            raise ValueError(f"override {text!r}: {here} is {_kind(node)}, not a section")
        if last:
            node[index] = value
            break
        default = _child(defaults, index)
        if isinstance(node, dict) and node.get(index) is None:
            node[index] = copy.deepcopy(default) if isinstance(default, (dict, list)) else {}
        node, defaults = node[index], default
    return key


def _child(node: Any, index: Any) -> Any:
    if isinstance(node, dict):
        return node.get(index)
    if isinstance(node, list) and isinstance(index, int) and index < len(node):
        return node[index]
    return None


# -- describing validation errors -------------------------------------------------------------


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return f"a {type(value).__name__}"


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML: 3.5, 'abc', true, null; containers by kind."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return _kind(value)


def _model_fields_at(loc: tuple) -> list[str] | None:
    """The keys the model at `loc` (a path into Config) accepts, or None if no model is there."""
    model: type[BaseModel] = Config
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        inner = _model_in(field.annotation)
        if inner is None:
            return None
        model = inner
    return list(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if (found := _model_in(arg)) is not None:
            return found
    return None


def _describe(err: ValidationError, overridden: dict[str, str]) -> list[str]:
    """One line per problem: `dotted.path: message (got value)`, without pydantic's URLs."""
    lines = []
    for error in err.errors(include_url=False):
        loc = tuple(error["loc"])
        path = ".".join(str(part) for part in loc)
        kind = error["type"]
        if kind == "extra_forbidden":
            known = _model_fields_at(loc[:-1]) or []
            close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
            parent = ".".join(str(part) for part in loc[:-1]) or "the top level"
            hint = (f"did you mean {'.'.join(map(str, loc[:-1] + (close[0],)))!r}?" if close
                    else f"{parent} takes: {', '.join(known)}")
            found = [f"unknown key {path!r} ({hint})"]
        elif kind == "missing":
            found = [f"{path}: required, but missing"]
        elif kind in ("value_error", "assertion_error"):
            # Our validators quote the values themselves, and may report one problem per line.
            message = re.sub(r"^(Value error|Assertion failed), ", "", error["msg"])
            found = [f"{path}: {m}" if path else m for m in message.splitlines()]
        else:
            found = [f"{path}: {error['msg']} (got {_show(error.get('input'))})"]
        origin = next((text for key, text in overridden.items() if path and (
            path == key or path.startswith(key + ".") or key.startswith(path + "."))), None)
        lines += [f"{line} [from override {origin!r}]" if origin else line for line in found]
    return lines


# ---------------------------------------------------------------------------------------------
# Run alone
# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Check a config and print it resolved.")
    parser.add_argument("config", nargs="?", default="default",
                        help=f"a preset ({', '.join(PRESETS)}) or the path of a YAML file")
    parser.add_argument("overrides", nargs="*", help="SECTION.KEY=VALUE (VALUE in YAML)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as err:
        sys.exit(str(err))
    print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True),
          end="")
    print(f"# config hash {config.hash()}")
    for name in SECTIONS:
        print(f"#   {name:<11} {config.section_hash(name)}")


if __name__ == "__main__":
    main()
