"""Citations of the project's documents: every ``docs/math.md`` and ``docs/reference-differences.md`` section (and
list item or quoted paragraph name) cited in the package, tests, benchmarks, examples and docs exists, and the package
and tests cite no file that is not in the repository."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = {name: ROOT / "docs" / f"{name}.md" for name in ("math", "reference-differences")}
SECTIONS = {"math": 20, "reference-differences": 8}
"""How many numbered sections each document has: citations rely on the numbers, so they must not shift."""


def _element(named: bool) -> str:
    """One cited section: ``§N``, ``§N-M`` or ``§N.K``, optionally ``items K and L`` or ``, "quoted name"``."""
    group = (lambda name: f"?P<{name}>") if named else (lambda name: "?:")
    return (rf"§({group('first')}\d+)(?:\s*-\s*({group('last')}\d+))?(?:\.({group('dot')}\d+))?"
            rf"(?:\s+items?\s+({group('items')}\d+(?:\s*(?:,|and)\s*\d+)*))?"
            rf'(?:,\s*"({group("quote")}[^"\n]+)")?')


CITATION = re.compile(r"docs/(?P<doc>math|reference-differences)\.md`?\s*\(?\s*(?P<chain>"
                      + _element(False) + r"(?:(?:\s*,\s*|\s+and\s+)" + _element(False) + r")*)")
"""A citation: the document, then one or more sections separated by commas or "and" (a line break may intervene)."""
ONE = re.compile(_element(True))
FOREIGN = ("MATH" + ".md", "REFERENCE" + ".md", "ARCHITECTURE" + ".md", "STYLE" + ".md", "SPARSE-BACKENDS" + ".md",
           "shared" + "/design")
"""Private design notes outside the repository, which users cannot open."""


def _sources() -> list[Path]:
    """Every file whose citations are checked."""
    files = [*(ROOT / "funcdiff").rglob("*.py"), *(ROOT / "tests").rglob("*.py"), ROOT / "README.md"]
    files += (ROOT / "docs").glob("*.md")
    for folder in ("benchmarks", "examples"):
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".md", ".sh", ".txt") and p.is_file()]
    return sorted(p for p in files if "__pycache__" not in p.parts)


def _sections(doc: Path) -> dict[int, str]:
    """The text of each ``## N. Title`` section of ``doc``, by number."""
    parts = re.split(r"^## (\d+)\. ", doc.read_text(), flags=re.M)
    return {int(number): body for number, body in zip(parts[1::2], parts[2::2])}


def _citations() -> list[tuple[str, str, int, str]]:
    """``(where, doc, section, detail)`` for every cited section; ``detail`` is ``item K``, a quoted name or empty."""
    found = []
    for path in _sources():
        text = path.read_text(errors="replace")
        for match in CITATION.finditer(text):
            where = f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}"
            for ref in ONE.finditer(match.group("chain")):
                first = int(ref.group("first"))
                last = int(ref.group("last") or first)
                found += [(where, match.group("doc"), n, "") for n in range(first, last + 1)]
                items = re.findall(r"\d+", ref.group("items") or "") + ([ref.group("dot")] if ref.group("dot") else [])
                found += [(where, match.group("doc"), first, f"item {k}") for k in items]
                if ref.group("quote"):
                    found.append((where, match.group("doc"), first, ref.group("quote")))
    return found


@pytest.mark.parametrize("name", sorted(DOCS))
def test_sections_are_numbered_in_order(name: str) -> None:
    """Each document exists and its sections are numbered 1, 2, ... with none missing, repeated or added."""
    assert DOCS[name].is_file(), f"docs/{name}.md is missing"
    numbers = [int(n) for n in re.findall(r"^## (\d+)\. \S", DOCS[name].read_text(), flags=re.M)]
    assert numbers == list(range(1, SECTIONS[name] + 1))


def test_every_citation_names_an_existing_section() -> None:
    """Cited sections exist; a cited list item (``§8 item 9``, ``§8.2``) is a numbered item of that section, and a
    quoted name (``§1, "Timestep handling"``) appears in it."""
    citations = _citations()
    assert len(citations) > 100, "the citation pattern no longer finds the docstrings' citations"
    sections = {name: _sections(path) for name, path in DOCS.items()}
    wrong = []
    for where, doc, number, detail in citations:
        body = sections[doc].get(number)
        if body is None:
            wrong.append(f"{where}: docs/{doc}.md §{number} does not exist")
        elif detail.startswith("item "):
            if not re.search(rf"^\s*{detail[5:]}\. \S", body, flags=re.M):
                wrong.append(f"{where}: docs/{doc}.md §{number} has no {detail}")
        elif detail and detail not in body:
            wrong.append(f"{where}: docs/{doc}.md §{number} does not mention {detail!r}")
    assert not wrong, "\n".join(wrong)


def test_no_citation_of_files_outside_the_repository() -> None:
    """The package and the tests cite only what a user has: no private design notes."""
    wrong = []
    for folder in ("funcdiff", "tests"):
        for path in sorted((ROOT / folder).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            text = path.read_bytes().decode("utf-8", errors="replace")
            wrong += [f"{path.relative_to(ROOT)}: {name}" for name in FOREIGN if name in text]
    assert not wrong, "\n".join(wrong)
