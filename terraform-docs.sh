#!/usr/bin/env bash
# Regenerates the Inputs/Outputs section of each Terraform root's README with terraform-docs,
# between the <!-- BEGIN_TF_DOCS --> and <!-- END_TF_DOCS --> markers.
#
# Usage: ./terraform-docs.sh [--check]
#   --check  change nothing; fail if a README is out of date
#   --help   this text
set -o errexit -o nounset -o pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0" # the comment above
  exit 0
fi

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly repo_root
readonly roots=(s3-backends dynamodb ecr-repo eks-cluster)

if ! command -v terraform-docs >/dev/null 2>&1; then
  echo "terraform-docs.sh: terraform-docs is not installed or not on PATH;" \
    "install it from https://terraform-docs.io/user-guide/installation/" >&2
  exit 1
fi

args=(markdown table --output-file README.md --output-mode inject)
if [[ "${1:-}" == "--check" ]]; then
  args+=(--output-check)
elif [[ $# -gt 0 ]]; then
  echo "terraform-docs.sh: unknown argument '$1' (only --check is accepted)" >&2
  exit 2
fi

for root in "${roots[@]}"; do
  terraform-docs "${args[@]}" "${repo_root}/${root}"
done
