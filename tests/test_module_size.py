"""The module's size is stated once in the docs, for the build the docs
describe, and the README's demo transcript is of that same build: both
figures equal the size of the module `scripts/build` made here. Needs no
Envoy; needs the built module (scripts/test builds it first)."""

import re

from stickysplit import paths

PERFORMANCE = paths.REPO / "docs/performance.md"
README = paths.REPO / "README.md"
STATEMENT = re.compile(r"The module of this build is ([\d,]+) bytes")
TRANSCRIPT = re.compile(r"module: target/wasm32-wasip1/release/sticky_split\.wasm \((\d+) bytes")


def figures(pattern, text):
    return [int(m.group(1).replace(",", "")) for m in pattern.finditer(text)]


def test_the_module_size_is_stated_once_and_is_this_builds():
    built = paths.WASM.stat().st_size
    stated = figures(STATEMENT, PERFORMANCE.read_text())
    assert len(stated) == 1, f"docs/performance.md states the module size {len(stated)} times: {stated}"
    assert stated == [built], f"docs/performance.md says {stated[0]} bytes; the built module has {built}"
    shown = figures(TRANSCRIPT, README.read_text())
    assert shown == [built], f"the README's demo transcript shows {shown}; the built module has {built}"
