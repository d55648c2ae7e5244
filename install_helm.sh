#!/usr/bin/env bash
# Installs Helm, the pinned release, after checking the archive's sha256 against the checksum
# published beside it.
#
# Usage: ./install_helm.sh [INSTALL_DIR]     (default: /usr/local/bin; --help: this text)
#   HELM_VERSION   the release to install (default: the pinned one below)
#   HELM_BASE_URL  where releases are served (default: https://get.helm.sh)
set -o errexit -o nounset -o pipefail
# shellcheck source=install_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/install_common.sh"
help_or_refuse_options "$@"

readonly default_version="v4.2.4"
readonly version="${HELM_VERSION:-${default_version}}"
readonly base_url="${HELM_BASE_URL:-https://get.helm.sh}"
readonly install_dir="${1:-/usr/local/bin}"

main() {
  [[ "${version}" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "HELM_VERSION must look like v4.2.4, not '${version}'"
  command -v curl >/dev/null 2>&1 || die "curl is required"

  local os arch archive url workdir
  os="$(detect_os)"
  arch="$(detect_arch)"
  archive="helm-${version}-${os}-${arch}.tar.gz"
  url="${base_url}/${archive}"
  workdir="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand now: workdir is local to this function
  trap "rm -rf '${workdir}'" EXIT

  echo "Downloading Helm ${version} for ${os}/${arch}"
  curl --fail --silent --show-error --location --output "${workdir}/${archive}" "${url}"
  curl --fail --silent --show-error --location --output "${workdir}/${archive}.sha256" "${url}.sha256"

  verify_sha256 "${workdir}/${archive}" "${workdir}/${archive}.sha256" "${url}"

  tar -xzf "${workdir}/${archive}" -C "${workdir}" "${os}-${arch}/helm"
  as_root install -d "${install_dir}"
  as_root install -m 0755 "${workdir}/${os}-${arch}/helm" "${install_dir}/helm"
  "${install_dir}/helm" version
}

main "$@"
