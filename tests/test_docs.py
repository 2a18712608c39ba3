"""The documentation: README.md and docs/ link only to files of the repository, cite nothing
outside it, every registered method and dataset has its page, and mkdocs.yml's navigation covers
every page. Reads files only (no mkdocs, no torch): the strict site build is `make test`'s."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from affectlab.catalog_data import CATALOG

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted([REPO / "README.md", *DOCS.rglob("*.md")])

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_BLOCK = re.compile(r"^(```|~~~).*?^\1", flags=re.S | re.M)
# a path of the repository named in code (`benchmarks/learning.py`, `src/affectlab/nn/ssm.py`)
REPO_PATH = re.compile(r"`((?:src|tests|benchmarks|docs)/[\w./*-]*\w)`")
# files of the development workspace or paper copies that are not part of the repository
FOREIGN = re.compile(r"DESIGN\.md|DATASETS\.md|OFFICIAL_CODE|CONVENTIONS\.md|(?<![\w/])shared/"
                     r"|\.pdf\b|\d{3}_[0-9a-f]{16}\.txt")


def _prose(text: str) -> str:
    """The text without fenced code blocks (shell examples are not links)."""
    return CODE_BLOCK.sub("", text)


def _relative_links(page: Path) -> list[str]:
    targets = []
    for target in LINK.findall(_prose(page.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue                                    # http:, https:, mailto:, anchors
        targets.append(target)
    return targets


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_exist(page):
    missing = []
    for target in _relative_links(page):
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists() or REPO not in (path, *path.parents):
            missing.append(target)
    assert not missing, f"{page.relative_to(REPO)} links to files not in the repository: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_named_repository_paths_exist(page):
    text = page.read_text()
    missing = [p for p in REPO_PATH.findall(text) if not list(REPO.glob(p))]
    assert not missing, f"{page.relative_to(REPO)} names paths that do not exist: {missing}"
    foreign = sorted({m.group(0) for m in FOREIGN.finditer(text)})
    assert not foreign, f"{page.relative_to(REPO)} refers to files outside the repository: " \
        f"{foreign}"


def test_every_method_and_dataset_has_a_page():
    methods = [m for m in CATALOG["methods"] if not (DOCS / "methods" / f"{m}.md").exists()]
    datasets = [d for d in CATALOG["datasets"] if not (DOCS / "datasets" / f"{d}.md").exists()]
    assert not methods, f"methods without docs/methods/<name>.md: {methods}"
    assert not datasets, f"datasets without docs/datasets/<name>.md: {datasets}"
    readme = (REPO / "README.md").read_text()
    for kind, names in (("methods", CATALOG["methods"]), ("datasets", CATALOG["datasets"])):
        for name in names:
            assert f"(docs/{kind}/{name}.md)" in readme, f"README's table lacks {kind} {name}"


def _nav_files(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [f for item in node for f in _nav_files(item)]
    if isinstance(node, dict):
        return [f for value in node.values() for f in _nav_files(value)]
    return []


def test_navigation_covers_every_page():
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    nav = _nav_files(config["nav"])
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(set(nav)) == pages, (
        f"not in the nav: {sorted(set(pages) - set(nav))}; "
        f"in the nav, no such page: {sorted(set(nav) - set(pages))}")


def test_readme_starts_with_the_setup_contract():
    """The first commands a reader meets are `make demo` and `make test`."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    assert text.index("```bash") < text.index("\n## ")


def test_readme_sections_the_docs_include_exist():
    """docs/ pages include README sections through snippet markers: each marker pair is there."""
    readme = (REPO / "README.md").read_text()
    for page in DOCS.rglob("*.md"):
        for name in re.findall(r'--8<-- "README\.md:([\w-]+)"', page.read_text()):
            assert f"[start:{name}]" in readme and f"[end:{name}]" in readme, (page, name)


def test_bibliography_has_the_five_papers():
    bib = (DOCS / "references.bib").read_text()
    keys = re.findall(r"^@\w+\{([\w-]+),", bib, flags=re.M)
    assert len(keys) == len(set(keys))
    for key in ("wu_dhcmcacl", "anonymous_clmer", "wang2026ufama", "guo2023memhacl",
                "liu2025m2s"):
        assert key in keys
    for doi in re.findall(r"doi\s*=\s*\{([^}]*)\}", bib):
        assert re.fullmatch(r"10\.\d{4,9}/\S+", doi), doi
