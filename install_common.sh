#!/usr/bin/env bash
# Helpers shared by install_kubectl.sh and install_helm.sh; sourced, not run.
# shellcheck disable=SC2034 # the sourcing script uses what it needs

# With -h or --help, prints the sourcing script's header comment (its usage) and exits 0; any
# other option is refused before anything is downloaded.
help_or_refuse_options() {
  case "${1:-}" in
    -h | --help)
      sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"
      exit 0
      ;;
    -*) die "unknown option '$1' (see --help)" ;;
  esac
}

die() {
  echo "${0##*/}: $*" >&2
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

# Fails, installing nothing, unless the file's sha256 is the one published in the digest file
# (the digest, possibly followed by the file's name).
verify_sha256() {
  local file="$1" digest_file="$2" url="$3" expected actual
  expected="$(cut -d ' ' -f 1 <"${digest_file}" | tr -d '[:space:]')"
  actual="$(sha256_of "${file}")"
  [[ -n "${expected}" && "${expected}" == "${actual}" ]] ||
    die "checksum mismatch for ${url}: expected '${expected}', got '${actual}'; nothing installed"
}

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then
    "$@"
  else
    sudo "$@"
  fi
}
