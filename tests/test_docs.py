"""The docs' links hold: every relative link in README.md and docs/*.md
points at a file or directory of the repository, and every anchor at a
heading of the page it names, by GitHub's slug rules. Needs no Envoy.

(The configuration reference and the quoted refusals are checked against the
code by the native test filter/core/tests/native/docs.rs.)"""

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# a code span: a run of backticks, then anything up to the same run
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
HTML_LINK = re.compile(r"\b(?:href|src)=\"([^\"]+)\"")
HTML_ANCHOR = re.compile(r"\b(?:id|name)=\"([^\"]+)\"")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")
LINE_ANCHOR = re.compile(r"^L\d+(-L\d+)?$")


def blank(text):
    """The same text with every character but newlines made a space."""
    return re.sub(r"[^\n]", " ", text)


def prose(markdown):
    """The page without fenced code blocks and code spans, which become
    spaces: offsets and line numbers stay those of the page."""
    out, fence = [], None
    for line in markdown.split("\n"):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
            out.append(blank(line))
        elif fence is not None:
            closing = line.strip()
            if closing.startswith(fence) and set(closing) == {fence[0]}:
                fence = None
            out.append(blank(line))
        else:
            out.append(line)
    return CODE_SPAN.sub(lambda m: blank(m.group(0)), "\n".join(out))


def heading_text(markdown_text):
    """A heading as GitHub renders it to text: links to their text, code
    spans to their content, HTML tags dropped."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", markdown_text)
    text = CODE_SPAN.sub(lambda m: m.group(2).strip(), text)
    return re.sub(r"<[^>]+>", "", text)


def slug(text):
    """GitHub's anchor for a heading: lowercase, punctuation other than `-`
    and `_` dropped, spaces to `-`."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def slugs(headings):
    """Anchors of headings in page order; a repeated one gets -1, -2, ...
    (as github-slugger counts)."""
    seen, out = {}, []
    for heading in headings:
        base = result = slug(heading)
        while result in seen:
            seen[base] += 1
            result = f"{base}-{seen[base]}"
        seen[result] = 0
        out.append(result)
    return out


def anchors(page):
    """Every anchor a link may name on `page`: its headings' and HTML ids."""
    markdown = page.read_text()
    headings = []
    fence = None
    for line in markdown.split("\n"):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
        elif fence is not None:
            closing = line.strip()
            if closing.startswith(fence) and set(closing) == {fence[0]}:
                fence = None
        elif h := HEADING.match(line):
            headings.append(heading_text(h.group(2)))
    return set(slugs(headings)) | set(HTML_ANCHOR.findall(prose(markdown)))


def links(page):
    """(line, target) of every link on `page` outside code."""
    text = prose(page.read_text())
    found = []
    for pattern in (INLINE_LINK, REFERENCE_DEFINITION, HTML_LINK):
        for m in pattern.finditer(text):
            found.append((text.count("\n", 0, m.start(1)) + 1, m.group(1)))
    return sorted(found)


def broken(page, target):
    """Why a link from `page` to `target` does not resolve, or None."""
    if not target:
        return "empty link"
    if SCHEME.match(target):
        return None  # not relative: not checked here
    path, _, anchor = target.partition("#")
    dest = (page.parent / unquote(path)).resolve() if path else page
    if REPO not in dest.parents and dest != REPO:
        return f"{dest} is outside the repository"
    if not dest.exists():
        return f"{dest.relative_to(REPO)} does not exist"
    if not anchor:
        return None
    if dest.suffix != ".md":
        if dest.is_file() and LINE_ANCHOR.match(anchor):
            return None
        return f"#{anchor}: {dest.relative_to(REPO)} is not a Markdown page"
    if unquote(anchor) not in anchors(dest):
        return f"#{anchor}: no such heading in {dest.relative_to(REPO)}"
    return None


@pytest.mark.parametrize(
    "heading,expected",
    [
        ("Route re-evaluation", "route-re-evaluation"),
        ("Drain, evict, generations", "drain-evict-generations"),
        ("Labels: three `stats_tags` rules", "labels-three-stats_tags-rules"),
        ("What `scripts/check-manifests` checks", "what-scriptscheck-manifests-checks"),
        ("hashOn", "hashon"),
        ("The run of the previous build (314,009-byte module)", "the-run-of-the-previous-build-314009-byte-module"),
        ("See [Failover](failover.md)", "see-failover"),
    ],
)
def test_slug_rules(heading, expected):
    assert slug(heading_text(heading)) == expected


def test_repeated_headings_are_numbered():
    assert slugs(["Tests", "Tests", "Tests", "Tests 1"]) == ["tests", "tests-1", "tests-2", "tests-1-1"]


def test_code_is_not_prose():
    page = "[a](x.md)\n```sh\n[b](y.md)\n# not a heading\n```\n`[c](z.md)` and ``[d](w.md) ` `` [e](v.md)\n"
    assert INLINE_LINK.findall(prose(page)) == ["x.md", "v.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_links_resolve(page):
    found = links(page)
    assert found or page.name != "README.md", "no links found in README.md: the parser is broken"
    problems = [
        f"{page.relative_to(REPO)}:{line}: ({target}) {why}"
        for line, target in found
        if (why := broken(page, target))
    ]
    assert not problems, "\n" + "\n".join(problems)
