"""The documentation: README.md stays a short door (at most 250 lines), every relative link of it
and of docs/ resolves (to a file, and for a #fragment into a markdown file to one of its headings,
slugged the way both GitHub and MkDocs slug it), and the MkDocs site (mkdocs.yml) builds offline
with --strict, its generated configuration reference holding every key of the schema."""

from __future__ import annotations

import html as htmllib
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 250

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def _prose(text: str) -> list[str]:
    """The lines of a markdown text outside fenced code blocks."""
    lines, fence = [], None
    for line in text.splitlines():
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)[0] * len(match.group(1))
        elif fence is not None and line.strip().startswith(fence) and not line.strip().strip(
                fence[0]):
            fence = None
        elif fence is None:
            lines.append(line)
    return lines


def links(text: str) -> list[str]:
    """The targets of the inline links and images of a markdown text, outside code."""
    found = []
    for line in _prose(text):
        found += _LINK.findall(_CODE_SPAN.sub("", line))
    return found


def _heading_text(raw: str) -> str:
    """A heading's text as rendered: code spans keep their content, links their text, emphasis
    and HTML tags go."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)
    text = re.sub(r"(`+)(.*?)\1", lambda m: m.group(2).strip(), text)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"(\*\*|__|\*|_)(\S(?:.*?\S)?)\1", r"\2", text)


def slug_mkdocs(text: str) -> str:
    """Python-Markdown's toc slugify, which MkDocs uses."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def slug_github(text: str) -> str:
    """GitHub's heading anchors: lower case, punctuation dropped, each space a hyphen."""
    text = text.strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The heading anchors of a markdown text that GitHub and MkDocs both give it (a duplicate
    heading's anchor differs between the two, so it counts only in its first form)."""
    seen_mk: dict[str, int] = {}
    seen_gh: dict[str, int] = {}
    mkdocs, github = set(), set()
    for line in _prose(text):
        match = _HEADING.match(line)
        if not match:
            continue
        title = _heading_text(match.group(2))
        for slug, seen, out, sep in ((slug_mkdocs(title), seen_mk, mkdocs, "_"),
                                     (slug_github(title), seen_gh, github, "-")):
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}{sep}{n}")
    return mkdocs & github


def broken_links(page: Path) -> list[str]:
    """Every relative link of `page` that does not resolve, with the reason."""
    problems = []
    text = page.read_text(encoding="utf-8")
    for target in links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
            continue  # an external link (http:, https:, mailto:)
        path, _, fragment = target.partition("#")
        dest = page if not path else (page.parent / path).resolve()
        if path.startswith("/"):
            problems.append(f"{target}: an absolute path (use a path relative to the page)")
        elif not dest.is_file():
            problems.append(f"{target}: no such file")
        elif fragment and dest.suffix == ".md":
            if fragment not in anchors(dest.read_text(encoding="utf-8")):
                problems.append(f"{target}: {dest.name} has no heading with the anchor "
                                f"#{fragment}")
    return problems


def _fragment_links() -> list[tuple[Path, str, str]]:
    """(page, target page, fragment) for every link with a #fragment into a docs page."""
    found = []
    for page in _pages():
        for target in links(page.read_text(encoding="utf-8")):
            path, _, fragment = target.partition("#")
            if fragment and not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                dest = page if not path else (page.parent / path).resolve()
                if dest.suffix == ".md" and DOCS in dest.parents:
                    found.append((page, dest.relative_to(DOCS).as_posix(), fragment))
    return found


# ---------------------------------------------------------------------------------------------
# the README and the links
# ---------------------------------------------------------------------------------------------


def test_readme_is_a_short_door():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines, at most {MAX_README_LINES}: move the detail to a page "
        "of docs/ and link it")
    first_block = README.read_text(encoding="utf-8").split("```")[1]
    assert "make run" in first_block and "make test" in first_block, (
        "the README's first code block must show the two commands, make run and make test")


def test_the_link_checker_catches_what_it_must(tmp_path):
    (tmp_path / "a.md").write_text("# Title\n\n## What `make setup` does\n\n## Title\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](a.md) [ok](a.md#title) [ok](a.md#what-make-setup-does) [ext](https://x.org/y)\n"
        "[missing](b.md) [bad anchor](a.md#nowhere) [duplicate](a.md#title_1)\n"
        "`[in code](c.md)`\n```\n[in a fence](d.md)\n```\n")
    problems = broken_links(page)
    assert len(problems) == 3, problems
    assert problems[0].startswith("b.md:") and "a.md#nowhere" in problems[1], problems
    assert "a.md#title_1" in problems[2], problems  # GitHub would call it #title-1


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    if page == README:
        assert links(page.read_text(encoding="utf-8")), "the README must link to the docs pages"
    assert broken_links(page) == []


def test_the_readme_links_every_docs_page():
    linked = {(README.parent / link.partition("#")[0]).resolve()
              for link in links(README.read_text(encoding="utf-8"))}
    missing = [p.relative_to(ROOT).as_posix() for p in sorted(DOCS.glob("*.md"))
               if p.resolve() not in linked]
    assert missing == [], f"the README's map of the docs misses {missing}"


# ---------------------------------------------------------------------------------------------
# the MkDocs site
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built as `make docs` builds it: offline and --strict."""
    mkdocs = Path(sys.executable).parent / "mkdocs"
    assert mkdocs.exists(), f"{mkdocs} is missing: `make setup` installs mkdocs (the dev extra)"
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([str(mkdocs), "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def _html(site: Path, page: str) -> str:
    name = page.removesuffix(".md")
    path = site / ("index.html" if name == "index" else f"{name}/index.html")
    assert path.is_file(), f"the site has no page for {page}"
    return path.read_text(encoding="utf-8")


def test_every_docs_page_is_built(site):
    for page in sorted(DOCS.glob("*.md")):
        assert "<h1" in _html(site, page.name), page.name


def test_fragments_are_the_built_sites_ids(site):
    pairs = _fragment_links()
    assert pairs, "no link into a heading of a docs page: the check would check nothing"
    missing = [f"{page.name} -> {target}#{fragment}" for page, target, fragment in pairs
               if f'id="{fragment}"' not in _html(site, target)]
    assert missing == [], missing


def test_configuration_reference_is_generated_from_the_schema(site):
    from tasks.schema import SECTIONS, Config

    html = _html(site, "configuration.md")
    assert "config-reference" not in html, "the marker was not replaced by the reference"
    for key in ("sampling.max_new_tokens", "training.lora_r", "evaluation.promote",
                "problems.curriculum.enabled", "sampling.specialists[].temperature"):
        assert f"<code>{key}</code>" in html, key

    def keys(model, prefix):
        for name, field in model.model_fields.items():
            yield prefix + name
            sub = next((t for t in (field.annotation, *getattr(field.annotation, "__args__", ()))
                        if isinstance(t, type) and hasattr(t, "model_fields")), None)
            if sub is not None:
                suffix = "[]." if getattr(field.annotation, "__origin__", None) is list else "."
                yield from keys(sub, prefix + name + suffix)

    every = [key for section in SECTIONS
             for key in keys(Config.model_fields[section].annotation, section + ".")]
    assert len(every) > 60
    assert [key for key in every if f"<code>{key}</code>" not in html] == []
    # a docstring, not only the name: the description of sampling.max_new_tokens
    doc = " ".join(Config.model_fields["sampling"].annotation.model_fields["max_new_tokens"]
                   .description.split())
    assert doc[:40].replace("`", "") in htmllib.unescape(re.sub(r"<[^>]+>", "", html))
