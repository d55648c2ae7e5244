"""The README and docs/: every relative link and heading anchor resolves, and the README stays
a map a newcomer reads in a few minutes."""

from pathlib import Path

import pytest

from tests.support.markdown import anchors, broken_links
from tests.support.processes import REPO_ROOT

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO_ROOT)) for p in PAGES])
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_a_broken_link_or_anchor_is_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## A part\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Here\n\n[ok](other.md#a-part) [ok](#here) [ok](https://example.com/x)\n"
        "[gone](missing.md) [no part](other.md#no-part) [no here](#nowhere)\n"
        "```bash\n# not a heading\n[in code](missing-too.md)\n```\n"
    )
    assert broken_links(page) == [
        "missing.md: no such file",
        "other.md#no-part: no such heading",
        "#nowhere: no such heading",
    ]


def test_anchors_follow_githubs_rules() -> None:
    markdown = "# The API: calls\n## 1. Design\n## Notes\n## Notes\n```\n# code\n```\n"
    assert anchors(markdown) == {"the-api-calls", "1-design", "notes", "notes-1"}


def test_the_readme_is_a_map_and_every_page_is_one_link_away() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 320
    for page in PAGES[1:]:
        assert f"](docs/{page.name})" in readme, f"the README links {page.name}"
