"""The docs hold: every relative link in README.md and docs/*.md points at
a file or directory of the repository, and every anchor at a heading of the
page it names, by GitHub's slug rules; the Layout of docs/testing.md names
what is in the tree. Needs no Envoy.

Markdown is parsed by markdown-it-py (CommonMark, GitHub's tables, raw HTML
read by html.parser), so code blocks and code spans are never taken for
links or headings. (The configuration reference and the quoted refusals are
checked against the code by the native test filter/core/tests/native/docs.rs.)"""

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# GitHub renders CommonMark plus tables and passes raw HTML through
MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable("table")
# GitHub's anchor for lines of a file that is not Markdown: #L12, #L12-L20
LINE_ANCHOR = re.compile(r"^L\d+(-L\d+)?$")


class _Attributes(HTMLParser):
    """The link targets (href, src) and anchors (id, name) of raw HTML."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.targets, self.ids = [], []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value is not None and name in ("href", "src"):
                self.targets.append(value)
            elif value is not None and name in ("id", "name"):
                self.ids.append(value)

    handle_startendtag = handle_starttag


def html_attributes(html):
    """(targets, ids) of an HTML block or inline tag."""
    parser = _Attributes()
    parser.feed(html)
    parser.close()
    return parser.targets, parser.ids


def parse(markdown):
    """(block tokens, reference definitions) of a page."""
    env = {}
    return MARKDOWN.parse(markdown, env), env.get("references", {})


def plain_text(children):
    """Inline tokens as GitHub renders them to text: links to their text,
    code spans to their content, images to their alt text, HTML tags
    and emphasis marks dropped."""
    return "".join(" " if c.type == "softbreak" else c.content
                   for c in children if c.type in ("text", "code_inline", "image", "softbreak"))


def heading_text(markdown_text):
    """A heading's Markdown as GitHub renders it to text."""
    [inline] = MARKDOWN.parseInline(markdown_text)
    return plain_text(inline.children)


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


def headings(tokens):
    """The text of every heading (ATX or setext), in page order."""
    return [plain_text(tokens[i + 1].children) for i, t in enumerate(tokens) if t.type == "heading_open"]


def html_pieces(tokens):
    """(block line range, raw HTML) of every HTML block and inline tag."""
    for t in tokens:
        if t.type == "html_block":
            yield t.map, t.content
        elif t.type == "inline":
            yield from ((t.map, c.content) for c in t.children if c.type == "html_inline")


def anchors(page):
    """Every anchor a link may name on `page`: its headings' and HTML ids."""
    tokens, _ = parse(page.read_text())
    ids = {i for _, html in html_pieces(tokens) for i in html_attributes(html)[1]}
    return set(slugs(headings(tokens))) | ids


def links_in(markdown):
    """(line, target) of every link, image, reference definition and HTML
    href/src of a page; code is not Markdown, so nothing in it counts."""
    tokens, references = parse(markdown)
    lines = markdown.split("\n")

    def line_of(target, span):
        # a token knows its block's lines; the link is on the first of them
        # that holds its target (markdown-it may have %-encoded it)
        start, end = span
        for n in range(start, end):
            if target in lines[n] or unquote(target) in lines[n]:
                return n + 1
        return start + 1

    found = []
    for t in tokens:
        if t.type != "inline":
            continue
        for c in t.children:
            if c.type == "link_open":
                found.append((line_of(c.attrs["href"], t.map), c.attrs["href"]))
            elif c.type == "image":
                found.append((line_of(c.attrs["src"], t.map), c.attrs["src"]))
    for span, html in html_pieces(tokens):
        found += [(line_of(target, span), target) for target in html_attributes(html)[0]]
    found += [(ref["map"][0] + 1, ref["href"]) for ref in references.values()]
    return sorted(found)


def broken(page, target):
    """Why a link from `page` to `target` does not resolve, or None."""
    if not target:
        return "empty link"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
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
        ("A <b>bold</b> ![icon](i.png) move", "a-bold-icon-move"),
    ],
)
def test_slug_rules(heading, expected):
    assert slug(heading_text(heading)) == expected


def test_repeated_headings_are_numbered():
    assert slugs(["Tests", "Tests", "Tests", "Tests 1"]) == ["tests", "tests-1", "tests-2", "tests-1-1"]


def test_code_is_not_prose():
    page = ("[a](x.md)\n```sh\n[b](y.md)\n# not a heading\n```\n`[c](z.md)` and ``[d](w.md) ` `` [e](v.md)\n"
            "\n    [f](indented-code.md)\n\n| t |\n|---|\n| [g](cell.md) `[h](cell-code.md)` |\n\n"
            "<p id=\"here\"><a href=\"html.md\">i</a></p>\n\n[j][ref]\n\n[ref]: ref.md#part\n")
    assert links_in(page) == [(1, "x.md"), (6, "v.md"), (12, "cell.md"), (14, "html.md"), (16, "ref.md#part"),
                              (18, "ref.md#part")]
    tokens, _ = parse(page)
    assert headings(tokens) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_links_resolve(page):
    found = links_in(page.read_text())
    assert found or page.name != "README.md", "no links found in README.md: the parser is broken"
    problems = [
        f"{page.relative_to(REPO)}:{line}: ({target}) {why}"
        for line, target in found
        if (why := broken(page, target))
    ]
    assert not problems, "\n" + "\n".join(problems)


# ---- the Layout of docs/testing.md ----

TESTING = REPO / "docs/testing.md"
# The part of the Layout held to the tree: entries whose path starts with
# one of these.
HELD = ("pyproject.toml", "filter/", "scripts/", "tests/", "docs/")
# Folders whose every subfolder the Layout must mention ...
EVERY_FOLDER = ("filter", "filter/core", "filter/src", "scripts", "scripts/lib/stickysplit", "tests", "docs")
# ... and those whose every file too, as the Layout enumerates them (the
# module crate's files: it is glue only, and the Layout says what each does).
ENUMERATED = ("filter/src", "scripts", "scripts/lib/stickysplit")
# What a word of a description must end with to name a file or folder.
NAME_ENDINGS = ("/", ".py", ".rs", ".sh", ".txt", ".toml", ".json", ".yaml", ".md")


def layout():
    """[(line in docs/testing.md, path, description)] of the code block
    under the heading Layout: an entry starts at column 0 with its path; an
    indented line continues its description."""
    tokens, _ = parse(TESTING.read_text())
    at = next(i for i, t in enumerate(tokens) if t.type == "heading_open" and tokens[i + 1].content == "Layout")
    block = next(t for t in tokens[at:] if t.type == "fence")
    entries = []
    for n, line in enumerate(block.content.splitlines(), start=block.map[0] + 2):
        if line[:1] not in ("", " "):
            path, _, description = line.partition(" ")
            entries.append([n, path, description.strip()])
        elif line.strip():
            entries[-1][2] += " " + line.strip()
    return entries


def names_in(base, description):
    """[(name, places)] of what a description names, each with the folders
    it may be in, innermost first: the folder named just before a
    parenthesis holds what the parenthesis names; then the entry's own
    folder; then the repository. A description that is only a list (`a, b;
    c`) names every item."""
    items = [w.strip() for w in re.split(r"[,;]", description)]
    if all(w and " " not in w for w in items):
        return [(w, [base]) for w in items]
    found, scopes, last = [], [base], ""
    for word in re.findall(r"[()]|[^\s(),;:]+", description):
        if word == "(":
            scopes.append(scopes[-1] / last if last.endswith("/") else scopes[-1])
        elif word == ")":
            scopes.pop()
        elif word.endswith(NAME_ENDINGS):
            found.append((word, [*reversed(scopes), REPO]))
        last = word
    return found


def layout_problems():
    """What the held part of the Layout gets wrong about the tree."""
    problems, mentioned = [], set()
    for line, path, description in layout():
        if not path.startswith(HELD):
            continue
        entry = REPO / path
        if not entry.exists():
            problems.append(f"docs/testing.md:{line}: Layout entry {path} does not exist")
        mentioned |= {entry, *entry.parents}
        base = entry if path.endswith("/") else entry.parent
        for name, places in names_in(base, description):
            found = [p / name for p in places if (p / name).exists()]
            if not found:
                where = ", ".join(str(p.relative_to(REPO)) + "/" for p in places[:-1])
                problems.append(f"docs/testing.md:{line}: Layout entry {path} names {name}, not in {where}")
            mentioned |= {found[0], *found[0].parents} if found else set()
    for folder in EVERY_FOLDER:
        for child in sorted((REPO / folder).iterdir()):
            if child.name.startswith((".", "__")):
                continue  # caches, and __init__.py
            if child not in mentioned and (child.is_dir() or folder in ENUMERATED):
                problems.append(f"docs/testing.md: Layout does not mention {child.relative_to(REPO)}")
    return problems


def test_layout_names_what_is_in_the_tree():
    paths = {path for _, path, _ in layout()}
    assert {"scripts/", "tests/", "scripts/lib/stickysplit/"} <= paths, "the Layout parser is broken"
    problems = layout_problems()
    assert not problems, "\n" + "\n".join(problems)


def test_layout_names_are_read_in_their_folder():
    names = dict(names_in(REPO / "x", "pool.py (a), sub/ (inner.py, ../ and scripts/ here), other.json"))
    assert names == {"pool.py": [REPO / "x", REPO], "sub/": [REPO / "x", REPO],
                     "inner.py": [REPO / "x/sub", REPO / "x", REPO], "../": [REPO / "x/sub", REPO / "x", REPO],
                     "scripts/": [REPO / "x/sub", REPO / "x", REPO], "other.json": [REPO / "x", REPO]}
    assert names_in(REPO / "scripts", "setup, build; common.sh") == [
        ("setup", [REPO / "scripts"]), ("build", [REPO / "scripts"]), ("common.sh", [REPO / "scripts"])]
