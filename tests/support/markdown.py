"""Markdown as GitHub renders it, for the tests of the docs: heading anchors and relative links."""

import re
from pathlib import Path

_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_HEADING = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)
# [text](target) and ![alt](target), not inside inline code.
_LINK = re.compile(r"(?<!`)!?\[[^\]]*\]\(([^)\s]+)\)")


def prose(markdown: str) -> str:
    """The text outside fenced code blocks."""
    return _FENCE.sub("", markdown)


def fenced(markdown: str, language: str) -> list[str]:
    """The body of each fenced block of `language`, in the page's order."""
    return re.findall(rf"^```{language}\n(.*?)^```", markdown, re.MULTILINE | re.DOTALL)


def anchors(markdown: str) -> set[str]:
    """The fragment GitHub gives each heading: lower case, punctuation dropped, spaces to -, and
    -1, -2, … after a repeated one."""
    seen: dict[str, int] = {}
    found = set()
    for heading in _HEADING.findall(prose(markdown)):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


def broken_links(page: Path) -> list[str]:
    """Each relative link of `page` whose file does not exist, or whose fragment names no
    heading of its file."""
    broken = []
    text = page.read_text()
    for target in _LINK.findall(prose(text)):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:: not ours to check
            continue
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked.read_text()):
            broken.append(f"{target}: no such heading")
    return broken
