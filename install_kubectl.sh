#!/usr/bin/env bash
# Installs kubectl at the cluster's Kubernetes minor version, after checking the binary's sha256
# against the checksum published beside it.
#
# Usage: ./install_kubectl.sh [INSTALL_DIR]     (default: /usr/local/bin; --help: this text)
#   KUBECTL_VERSION   the release to install (default: the pinned one below)
#   KUBECTL_BASE_URL  where releases are served (default: https://dl.k8s.io/release)
set -o errexit -o nounset -o pipefail
# shellcheck source=install_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/install_common.sh"
help_or_refuse_options "$@"

# Keep the minor version equal to eks-cluster's kubernetes_version (a test checks it).
readonly default_version="v1.35.0"
readonly version="${KUBECTL_VERSION:-${default_version}}"
readonly base_url="${KUBECTL_BASE_URL:-https://dl.k8s.io/release}"
readonly install_dir="${1:-/usr/local/bin}"

main() {
  [[ "${version}" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "KUBECTL_VERSION must look like v1.35.0, not '${version}'"
  command -v curl >/dev/null 2>&1 || die "curl is required"

  local os arch url workdir
  os="$(detect_os)"
  arch="$(detect_arch)"
  url="${base_url}/${version}/bin/${os}/${arch}/kubectl"
  workdir="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand now: workdir is local to this function
  trap "rm -rf '${workdir}'" EXIT

  echo "Downloading kubectl ${version} for ${os}/${arch}"
  curl --fail --silent --show-error --location --output "${workdir}/kubectl" "${url}"
  curl --fail --silent --show-error --location --output "${workdir}/kubectl.sha256" "${url}.sha256"

  verify_sha256 "${workdir}/kubectl" "${workdir}/kubectl.sha256" "${url}"

  as_root install -d "${install_dir}"
  as_root install -m 0755 "${workdir}/kubectl" "${install_dir}/kubectl"
  "${install_dir}/kubectl" version --client
}

main "$@"
