#!/usr/bin/env bash
# Installs kubectl at the cluster's Kubernetes minor version, after checking the binary's sha256
# against the checksum published beside it.
#
# Usage: ./install_kubectl.sh [INSTALL_DIR]     (default: /usr/local/bin)
#   KUBECTL_VERSION   the release to install (default: the pinned one below)
#   KUBECTL_BASE_URL  where releases are served (default: https://dl.k8s.io/release)
set -o errexit -o nounset -o pipefail

# Keep the minor version equal to eks-cluster's kubernetes_version (a test checks it).
readonly default_version="v1.35.0"
readonly version="${KUBECTL_VERSION:-${default_version}}"
readonly base_url="${KUBECTL_BASE_URL:-https://dl.k8s.io/release}"
readonly install_dir="${1:-/usr/local/bin}"

die() {
  echo "install_kubectl.sh: $*" >&2
  exit 1
}

detect_os() {
  case "$(uname -s)" in
    Linux) echo linux ;;
    Darwin) echo darwin ;;
    *) die "unsupported operating system: $(uname -s)" ;;
  esac
}

detect_arch() {
  case "$(uname -m)" in
    x86_64 | amd64) echo amd64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) die "unsupported architecture: $(uname -m)" ;;
  esac
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d ' ' -f 1
  else
    shasum -a 256 "$1" | cut -d ' ' -f 1
  fi
}

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then
    "$@"
  else
    sudo "$@"
  fi
}

main() {
  [[ "${version}" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "KUBECTL_VERSION must look like v1.35.0, not '${version}'"
  command -v curl >/dev/null 2>&1 || die "curl is required"

  local os arch url workdir expected actual
  os="$(detect_os)"
  arch="$(detect_arch)"
  url="${base_url}/${version}/bin/${os}/${arch}/kubectl"
  workdir="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand now: workdir is local to this function
  trap "rm -rf '${workdir}'" EXIT

  echo "Downloading kubectl ${version} for ${os}/${arch}"
  curl --fail --silent --show-error --location --output "${workdir}/kubectl" "${url}"
  curl --fail --silent --show-error --location --output "${workdir}/kubectl.sha256" "${url}.sha256"

  expected="$(tr -d '[:space:]' <"${workdir}/kubectl.sha256")"
  actual="$(sha256_of "${workdir}/kubectl")"
  [[ -n "${expected}" && "${expected}" == "${actual}" ]] ||
    die "checksum mismatch for ${url}: expected '${expected}', got '${actual}'; nothing installed"

  as_root install -d "${install_dir}"
  as_root install -m 0755 "${workdir}/kubectl" "${install_dir}/kubectl"
  "${install_dir}/kubectl" version --client
}

main "$@"
