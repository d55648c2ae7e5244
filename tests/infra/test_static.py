"""Static checks of the four Terraform roots: format, validity, conventions, checkov, docs."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import REPO_ROOT
from tests.support.terraform import (
    MIRROR_ENV,
    ROOTS,
    WORKING_FILES,
    MirrorNotFound,
    find_provider_mirror,
    load_hcl,
    write_cli_config,
)

COMMON_FILES = {"versions.tf", "providers.tf", "variables.tf", "outputs.tf", "main.tf"}


def load(root: str) -> dict[str, list[Any]]:
    """Every top-level block of a root, merged across its .tf files."""
    merged: dict[str, list[Any]] = {}
    for path in sorted((REPO_ROOT / root).glob("*.tf")):
        for key, blocks in load_hcl(path).items():
            merged.setdefault(key, []).extend(blocks)
    return merged


def named(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: body for block in blocks for name, body in block.items()}


def test_terraform_fmt() -> None:
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", *ROOTS],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_terraform_validate(root: str, tmp_path: Path, provider_mirror: Path) -> None:
    copy = tmp_path / root
    shutil.copytree(REPO_ROOT / root, copy, ignore=WORKING_FILES)
    for args in (["init", "-backend=false", "-lockfile=readonly"], ["validate", "-json"]):
        result = terraform(copy, *args)
        assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["warning_count"] == 0, result.stdout


def terraform(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`terraform` in `root`, its providers from the mirror."""
    config = write_cli_config(root.parent)
    return subprocess.run(
        ["terraform", f"-chdir={root}", *args, "-no-color"],
        env={**os.environ, "TF_CLI_CONFIG_FILE": str(config), "TF_INPUT": "0"},
        capture_output=True,
        text=True,
        check=False,
    )


LOCK = REPO_ROOT / "s3-backends" / ".terraform.lock.hcl"


def test_every_root_commits_the_one_provider_lock(root: str) -> None:
    lock = (REPO_ROOT / root / ".terraform.lock.hcl").read_text()
    assert lock == LOCK.read_text(), "the four roots lock the same provider alike"
    (block,) = load_hcl(REPO_ROOT / root / ".terraform.lock.hcl")["provider"]
    (aws,) = block.values()
    assert aws["version"] == "5.100.0"
    assert aws["constraints"] == "~> 5.100", "as versions.tf asks"
    schemes = [entry.partition(":")[0] for entry in aws["hashes"]]
    assert schemes.count("h1") == 1, "linux_amd64's package, checked on every init here"
    assert schemes.count("zh") == 15, "the release zip of every platform the registry serves"
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", f"{root}/.terraform.lock.hcl"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=False,
    )
    assert ignored.returncode == 1, "the lock file is committed, not ignored"


def test_a_provider_that_matches_no_locked_hash_is_refused(
    tmp_path: Path, provider_mirror: Path
) -> None:
    copy = tmp_path / "dynamodb"
    shutil.copytree(REPO_ROOT / "dynamodb", copy, ignore=WORKING_FILES)
    lock = copy / ".terraform.lock.hcl"
    lock.write_text(re.sub(r'"h1:[^"]+"', '"h1:' + "A" * 43 + '="', lock.read_text()))
    result = terraform(copy, "init", "-backend=false", "-lockfile=readonly")
    assert result.returncode == 1
    assert "doesn't match any of the checksums previously recorded" in " ".join(
        result.stderr.split()
    )


def test_same_file_split(root: str) -> None:
    files = {p.name for p in (REPO_ROOT / root).glob("*.tf")}
    assert files >= COMMON_FILES


def test_provider_and_terraform_constraints(root: str) -> None:
    (terraform,) = load(root)["terraform"]
    assert terraform["required_version"] == ">= 1.11"
    (providers,) = terraform["required_providers"]
    assert providers == {"aws": {"source": "hashicorp/aws", "version": "~> 5.100"}}
    assert "module" not in load(root), "no registry modules"


def test_tags_go_through_default_tags(root: str) -> None:
    (aws,) = [p["aws"] for p in load(root)["provider"]]
    assert aws["default_tags"] == [{"tags": "${var.tags}"}]


def test_remote_state_uses_a_partial_s3_backend(root: str) -> None:
    (terraform,) = load(root)["terraform"]
    if root == "s3-backends":
        assert "backend" not in terraform, "the state bucket's own state stays local"
        return
    (backend,) = terraform["backend"]
    assert backend == {"s3": {"key": f"{root}/terraform.tfstate"}}


def test_every_variable_and_output_is_typed_and_described(root: str) -> None:
    blocks = load(root)
    for name, body in named(blocks["variable"]).items():
        assert body.get("type"), f"variable {name} has no type"
        assert body.get("description"), f"variable {name} has no description"
    for name, body in named(blocks["output"]).items():
        assert body.get("description"), f"output {name} has no description"


def test_every_root_applies_with_defaults(root: str) -> None:
    required = [n for n, body in named(load(root)["variable"]).items() if "default" not in body]
    assert required == []


def test_no_force_destroy_by_default() -> None:
    variables = named(load("s3-backends")["variable"])
    assert variables["force_destroy"]["default"] is False


def test_committed_roots_hold_no_state_or_emulator_settings(root: str) -> None:
    for path in (REPO_ROOT / root).rglob("*"):
        assert not re.search(r"\.tfstate|override\.tf$", path.name), path
    text = "".join(p.read_text() for p in (REPO_ROOT / root).glob("*.tf"))
    assert not re.search(r"localhost|127\.0\.0\.1|endpoints\s*\{|\b\d{12}\b", text)


DOCS_BLOCK = re.compile(r"<!-- BEGIN_TF_DOCS -->(.*)<!-- END_TF_DOCS -->", re.DOTALL)


def test_readme_documents_every_variable_and_output(root: str) -> None:
    readme = (REPO_ROOT / root / "README.md").read_text()
    match = DOCS_BLOCK.search(readme)
    assert match, f"{root}/README.md has no terraform-docs markers"
    docs = match.group(1)
    blocks = load(root)
    for kind, key in (("input", "variable"), ("output", "output")):
        declared = named(blocks[key])
        documented = set(re.findall(rf'<a name="{kind}_([a-z0-9_]+)"></a>', docs))
        assert documented == set(declared), f"{root}: {kind}s in README differ from the code"
        for name, body in declared.items():
            row = next(line for line in docs.splitlines() if f'name="{kind}_{name}"' in line)
            assert body["description"].replace("|", "\\|") in row, f"{root}: {kind} {name}"


def checkov_results() -> dict[str, Any]:
    """checkov's terraform checks, run on each root, merged into one report."""
    checkov = os.environ.get("KIUSYS_CHECKOV", "checkov")
    if not shutil.which(checkov):
        pytest.fail(f"checkov not found at {checkov!r}; run through `make test`")
    merged: dict[str, Any] = {
        "summary": {"passed": 0, "failed": 0, "skipped": 0},
        "results": {"failed_checks": [], "skipped_checks": []},
    }
    for root in ROOTS:
        result = subprocess.run(
            [checkov, "--framework", "terraform", "--skip-download", "-o", "json", "-d", root],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        report = json.loads(result.stdout)
        for key in merged["summary"]:
            merged["summary"][key] += report["summary"][key]
        for key in merged["results"]:
            merged["results"][key] += report["results"].get(key, [])
    return merged


def test_checkov_finds_no_failed_checks() -> None:
    report = checkov_results()
    summary = report["summary"]
    print(f"checkov terraform: {summary}")
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    assert failed == []
    assert summary["passed"] > 100
    for skipped in report["results"]["skipped_checks"]:
        reason = skipped["check_result"].get("suppress_comment", "")
        assert len(reason) > 30, f"skip of {skipped['check_id']} needs a real reason"


def test_a_missing_provider_mirror_is_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path))
    with pytest.raises(MirrorNotFound, match=f"set {MIRROR_ENV} to the directory"):
        find_provider_mirror()


def test_the_configured_provider_mirror_is_used(
    provider_mirror: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MIRROR_ENV, str(provider_mirror))
    assert find_provider_mirror() == provider_mirror
