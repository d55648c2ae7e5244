"""The GitHub Actions workflows and Dependabot, checked here since GitHub cannot be reached:
actionlint and zizmor (offline) find nothing, every action is pinned to a commit, permissions are
least, and the jobs do what docs/operations.md's "Delivery" section says."""

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.processes import REPO_ROOT

GITHUB = REPO_ROOT / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))
ASSUMES_A_ROLE = "aws-actions/configure-aws-credentials"


def load(name: str) -> dict[str, Any]:
    # YAML 1.1 reads the key `on` as True; GitHub reads it as "on".
    workflow = yaml.safe_load((GITHUB / "workflows" / name).read_text())
    workflow["on"] = workflow.pop(True)
    return workflow  # type: ignore[no-any-return]


def steps(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in job["steps"] if step.get("uses", "").startswith(f"{action}@")]


def lint(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, check=False)


def test_there_are_the_two_workflows() -> None:
    assert [w.name for w in WORKFLOWS] == ["ci.yml", "release.yml"]


def test_actionlint_finds_nothing() -> None:
    result = lint("actionlint", "-format", "{{json .}}", *map(str, WORKFLOWS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout or "[]") == []


def test_zizmor_offline_finds_nothing() -> None:
    result = lint("zizmor", "--offline", "--format", "json", str(GITHUB))
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []


def test_both_linters_do_report_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "workflows" / "bad.yml"
    bad.parent.mkdir()
    bad.write_text(
        "on: issues\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - uses: actions/checkout@v7\n      - run: echo ${{ github.event.issue.title }}\n"
    )
    assert lint("actionlint", str(bad)).returncode != 0
    found = json.loads(lint("zizmor", "--offline", "--format", "json", str(bad)).stdout)
    assert {"template-injection", "unpinned-uses"} <= {f["ident"] for f in found}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_with_its_version(path: Path) -> None:
    uses = re.findall(r"uses:\s*(\S+)(.*)", path.read_text())
    assert uses
    for reference, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", reference), reference
        assert re.fullmatch(r"\s*# v\d+\.\d+\.\d+", comment), f"{reference}: no version comment"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_least_and_id_tokens_only_where_a_role_is_assumed(path: Path) -> None:
    workflow = load(path.name)
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        granted = job["permissions"]
        assert granted.get("contents") == "read", name
        assumes = bool(steps(job, ASSUMES_A_ROLE))
        assert (granted.get("id-token") == "write") == assumes, name
        assert set(granted) <= {"contents", "id-token"}, name
        for checkout in steps(job, "actions/checkout"):
            assert checkout["with"]["persist-credentials"] is False, name


def test_ci_runs_make_test_on_pull_requests_and_pushes_to_main() -> None:
    ci = load("ci.yml")
    assert "pull_request" in ci["on"]
    assert ci["on"]["push"]["branches"] == ["main"]
    runs = [step.get("run", "") for step in ci["jobs"]["test"]["steps"]]
    assert "make test" in runs
    assert steps(ci["jobs"]["test"], "hashicorp/setup-terraform")
    audit = " ".join(step.get("run", "") for step in ci["jobs"]["audit"]["steps"])
    assert "pip-audit --require-hashes" in audit
    assert "kiusys-app/requirements.lock" in audit


def test_release_builds_once_with_attestations_gates_on_the_scan_and_deploys_by_digest() -> None:
    release = load("release.yml")
    image, deploy = release["jobs"]["image"], release["jobs"]["deploy"]
    (build,) = steps(image, "docker/build-push-action")
    assert build["with"]["platforms"] == "linux/amd64"
    assert build["with"]["push"] is True
    assert build["with"]["sbom"] is True
    assert build["with"]["provenance"] == "mode=max"
    assert image["outputs"]["digest"] == "${{ steps.build.outputs.digest }}"
    gate = image["steps"][-1]["run"]
    assert "aws ecr wait image-scan-complete" in gate
    assert "CRITICAL" in gate
    assert deploy["needs"] == "image"
    assert deploy["environment"] == "production"
    render = next(s for s in deploy["steps"] if "configure.sh" in s.get("run", ""))
    assert render["env"]["DIGEST"] == "${{ needs.image.outputs.digest }}"
    roles = [s["with"]["role-to-assume"] for j in (image, deploy) for s in steps(j, ASSUMES_A_ROLE)]
    assert roles == ["${{ vars.AWS_PUSH_ROLE_ARN }}", "${{ vars.AWS_DEPLOY_ROLE_ARN }}"]


def test_the_deploy_step_sets_every_output_that_configure_reads() -> None:
    script = (REPO_ROOT / "kubernetes" / "configure.sh").read_text()
    read = {name.upper() for name in re.findall(r"tf_output [\w-]+ (\w+)", script)}
    deploy = load("release.yml")["jobs"]["deploy"]
    render = next(s for s in deploy["steps"] if "configure.sh" in s.get("run", ""))
    given = {k.removeprefix("TF_OUTPUT_") for k in render["env"] if k.startswith("TF_OUTPUT_")}
    assert given == read
    for name in given:
        assert render["env"][f"TF_OUTPUT_{name}"] == f"${{{{ vars.TF_OUTPUT_{name} }}}}"


def test_dependabot_keeps_pip_actions_the_base_image_and_the_provider_current() -> None:
    config = yaml.safe_load((GITHUB / "dependabot.yml").read_text())
    by_ecosystem = {u["package-ecosystem"]: u for u in config["updates"]}
    assert {"pip", "github-actions", "docker", "terraform"} <= set(by_ecosystem)
    assert set(by_ecosystem["terraform"]["directories"]) == {
        "/s3-backends",
        "/dynamodb",
        "/ecr-repo",
        "/eks-cluster",
    }
    assert by_ecosystem["docker"]["directory"] == "/kiusys-app"
    assert "/kiusys-app" in by_ecosystem["pip"]["directories"]
