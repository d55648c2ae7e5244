"""Run the Terraform roots against moto, the way LocalStack's `tflocal` does.

The roots stay clean: each run works on a copy of a root, adds an override file with moto's
endpoints, and resolves hashicorp/aws from a local provider mirror when the machine has one.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
from hcl2.utils import SerializationOptions

from tests.support.aws import FAKE_CREDENTIALS, REGION
from tests.support.processes import REPO_ROOT, Emulator

ROOTS = ["s3-backends", "dynamodb", "ecr-repo", "eks-cluster"]
# What `terraform init` and `apply` leave in a root; the committed lock file is copied, so that
# every init checks the mirror's provider against its hashes (-lockfile=readonly).
WORKING_FILES = shutil.ignore_patterns(".terraform", "*.tfstate*")
MIRROR_ENV = "KIUSYS_TF_PROVIDER_MIRROR"

# Services the roots use, all pointed at the emulator.
_SERVICES = [
    "acm",
    "autoscaling",
    "dynamodb",
    "ec2",
    "ecr",
    "eks",
    "iam",
    "kms",
    "logs",
    "route53",
    "s3",
    "sts",
]

# Where a provider mirror may be: Terraform's implied local mirror directories, then any
# directory one level under /opt that holds a `registry.terraform.io` tree.
_MIRROR_CANDIDATES = [
    "~/.terraform.d/plugins",
    "~/.local/share/terraform/plugins",
    "/usr/local/share/terraform/plugins",
    "/usr/share/terraform/plugins",
    "/opt/*",
]


_HCL_OPTIONS = SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True
)


def load_hcl(path: Path) -> dict[str, Any]:
    """One .tf file as plain Python values, strings without their quotes."""
    with path.open() as handle:
        return hcl2.load(handle, serialization_options=_HCL_OPTIONS)  # type: ignore[no-any-return]


class MirrorNotFound(RuntimeError):
    pass


def find_provider_mirror() -> Path:
    """The local mirror holding hashicorp/aws, from $KIUSYS_TF_PROVIDER_MIRROR or a search."""
    configured = os.environ.get(MIRROR_ENV)
    candidates = [configured] if configured else _MIRROR_CANDIDATES
    for pattern in candidates:
        for path in sorted(glob.glob(os.path.expanduser(pattern))):
            if Path(path, "registry.terraform.io", "hashicorp", "aws").is_dir():
                return Path(path)
    raise MirrorNotFound(
        "no local Terraform provider mirror with registry.terraform.io/hashicorp/aws was found "
        f"(looked in {', '.join(candidates)}); set {MIRROR_ENV} to the directory that holds "
        "registry.terraform.io"
    )


def write_cli_config(directory: Path) -> Path:
    """A Terraform CLI config that installs hashicorp/* from the mirror, with a plugin cache."""
    mirror = find_provider_mirror()
    cache = directory / "plugin-cache"
    cache.mkdir(parents=True, exist_ok=True)
    config = directory / "terraform.rc"
    config.write_text(
        f"""provider_installation {{
  filesystem_mirror {{
    path    = {json.dumps(str(mirror))}
    include = ["registry.terraform.io/hashicorp/*"]
  }}
  direct {{
    exclude = ["registry.terraform.io/hashicorp/*"]
  }}
}}
plugin_cache_dir = {json.dumps(str(cache))}
"""
    )
    return config


def provider_override(endpoint: str) -> str:
    endpoints = "\n".join(f"    {name} = {json.dumps(endpoint)}" for name in _SERVICES)
    return f"""# Points the root at the emulator; written by the tests, never committed.
provider "aws" {{
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  s3_use_path_style           = true

  endpoints {{
{endpoints}
  }}
}}
"""


def backend_override(endpoint: str) -> str:
    return f"""endpoints = {{
  s3  = {json.dumps(endpoint)}
  sts = {json.dumps(endpoint)}
}}
use_path_style              = true
skip_credentials_validation = true
skip_requesting_account_id  = true
skip_metadata_api_check     = true
skip_region_validation      = true
"""


class TerraformError(RuntimeError):
    pass


# What moto, not the configuration, makes fail under load: a call that took effect but whose
# answer came too late (the provider's retry then finds what it made: RouteAlreadyExists), the
# emulator's own 500s, and dropped connections.
EMULATOR_HICCUP = re.compile(
    r"RouteAlreadyExists|InternalFailure|InternalError|StatusCode: 5\d\d|"
    r"connection reset by peer|connection refused|unexpected EOF",
    re.IGNORECASE,
)


def _check(root: str, args: tuple[str, ...], result: subprocess.CompletedProcess[str]) -> None:
    if result.returncode != 0:
        raise TerraformError(
            f"terraform {' '.join(args)} in {root} exited {result.returncode}:\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
        )


@dataclass
class Workspace:
    """Copies of the roots, wired to one emulator endpoint."""

    directory: Path
    emulator: Emulator
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            **FAKE_CREDENTIALS,
            "TF_CLI_CONFIG_FILE": str(write_cli_config(self.directory)),
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "AWS_REGION": REGION,
        }
        if self.emulator.ca_bundle is not None:
            # Go's TLS stack (Terraform, the provider) and botocore both trust this bundle.
            self.env["SSL_CERT_FILE"] = str(self.emulator.ca_bundle)
            self.env["AWS_CA_BUNDLE"] = str(self.emulator.ca_bundle)
        for root in ROOTS:
            copy = self.root(root)
            if not copy.exists():
                shutil.copytree(
                    REPO_ROOT / root,
                    copy,
                    ignore=WORKING_FILES,
                )
                (copy / "emulator_override.tf").write_text(provider_override(self.emulator.url))
        (self.directory / "emulator-backend.hcl").write_text(backend_override(self.emulator.url))

    def root(self, name: str) -> Path:
        return self.directory / name

    def set_variables(self, root: str, values: dict[str, Any]) -> None:
        """Variables for every later command in `root`, as an auto-loaded tfvars file."""
        (self.root(root) / "emulator.auto.tfvars.json").write_text(json.dumps(values))

    def run(self, root: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["terraform", f"-chdir={self.root(root)}", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if check:
            _check(root, args, result)
        return result

    def apply(self, root: str, *variables: str) -> None:
        """`apply`, and once more if the emulator, not the configuration, failed it.

        `make local-aws` and the e2e suite share this, so one hiccup of a loaded emulator
        fails neither; a second failure does.
        """
        args = ("apply", "-auto-approve", "-no-color", *(f"-var={v}" for v in variables))
        result = self.run(root, *args, check=False)
        if result.returncode != 0 and EMULATOR_HICCUP.search(result.stderr):
            print(f"{root}: the emulator failed the apply; trying once more", file=sys.stderr)
            result = self.run(root, *args, check=False)
        _check(root, args, result)

    def init(self, root: str) -> None:
        if root == "s3-backends":
            self.run(root, "init", "-no-color", "-lockfile=readonly")
            return
        backend = self.directory / "backend.hcl"
        if not backend.exists():
            backend.write_text(self.output("s3-backends", "backend_config"))
        self.run(
            root,
            "init",
            "-no-color",
            "-lockfile=readonly",
            f"-backend-config={backend}",
            f"-backend-config={self.directory / 'emulator-backend.hcl'}",
        )

    def destroy(self, root: str, *variables: str) -> None:
        self.run(root, "destroy", "-auto-approve", "-no-color", *(f"-var={v}" for v in variables))

    def plan_changes(self, root: str) -> subprocess.CompletedProcess[str]:
        """`plan -detailed-exitcode`: returncode 0 means no changes, 2 means changes."""
        result = self.run(root, "plan", "-detailed-exitcode", "-no-color", check=False)
        if result.returncode not in (0, 2):
            raise TerraformError(f"plan in {root} failed:\n{result.stderr[-6000:]}")
        return result

    def output(self, root: str, name: str) -> Any:
        raw = self.run(root, "output", "-json", name).stdout
        return json.loads(raw)

    def outputs(self, root: str) -> dict[str, Any]:
        """Every output of `root`, by name."""
        raw = json.loads(self.run(root, "output", "-json").stdout)
        return {name: output["value"] for name, output in raw.items()}

    def state_resources(self, root: str) -> list[str]:
        listed = self.run(root, "state", "list").stdout.split()
        return [a for a in listed if not a.startswith("data.")]
