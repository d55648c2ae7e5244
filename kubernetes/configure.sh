#!/usr/bin/env bash
# Writes build/deploy/kustomization.yaml: the manifests in this folder, with the values
# that only `terraform output` knows (ECR image, IRSA role ARNs, region, cluster name).
# The result is git-ignored, so no account ID ever lands in the repository.
#
# Usage: kubernetes/configure.sh IMAGE_TAG
#   ACM_CERTIFICATE_ARN=arn:...  also serve 443 with TLS on the load balancer (optional)
set -o errexit -o nounset -o pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo_root
readonly out_dir="${repo_root}/build/deploy"

die() {
  echo "configure.sh: $*" >&2
  exit 2
}

tag="${1:-}"
[[ -n "${tag}" ]] || die "usage: kubernetes/configure.sh IMAGE_TAG"
[[ "${tag}" != "latest" ]] || die "use an immutable tag (the ECR repository refuses to overwrite tags), not 'latest'"
[[ "${tag}" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "'${tag}' is not a valid image tag"

tf_output() {
  local value
  value="$(terraform -chdir="${repo_root}/$1" output -raw "$2")" || die "cannot read output '$2' of $1/; apply it first"
  [[ -n "${value}" ]] || die "output '$2' of $1/ is empty"
  printf '%s' "${value}"
}

repository_url="$(tf_output ecr-repo repository_url)"
region="$(tf_output eks-cluster region)"
cluster_name="$(tf_output eks-cluster cluster_name)"
app_role_arn="$(tf_output eks-cluster app_role_arn)"
autoscaler_role_arn="$(tf_output eks-cluster autoscaler_role_arn)"

components=""
tls_patch=""
if [[ -n "${ACM_CERTIFICATE_ARN:-}" ]]; then
  [[ "${ACM_CERTIFICATE_ARN}" =~ ^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]+$ ]] ||
    die "ACM_CERTIFICATE_ARN is not an ACM certificate ARN"
  components="components:
  - ../../kubernetes/components/tls"
  tls_patch="  - target:
      kind: Service
      name: kiusys-app
    patch: |-
      - op: add
        path: /metadata/annotations/service.beta.kubernetes.io~1aws-load-balancer-ssl-cert
        value: ${ACM_CERTIFICATE_ARN}"
fi

mkdir -p "${out_dir}"
cat >"${out_dir}/kustomization.yaml" <<YAML
# Written by kubernetes/configure.sh from terraform outputs; do not edit, do not commit.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization

resources:
  - ../../kubernetes

${components}

images:
  - name: kiusys-app
    newName: ${repository_url}
    newTag: ${tag}

configMapGenerator:
  - name: kiusys-app-config
    namespace: kiusys
    behavior: merge
    literals:
      - AWS_REGION=${region}

patches:
  - target:
      kind: ServiceAccount
      name: kiusys-app
    patch: |-
      - op: replace
        path: /metadata/annotations/eks.amazonaws.com~1role-arn
        value: ${app_role_arn}
  - target:
      kind: ServiceAccount
      name: cluster-autoscaler
    patch: |-
      - op: replace
        path: /metadata/annotations/eks.amazonaws.com~1role-arn
        value: ${autoscaler_role_arn}
  - target:
      kind: Deployment
      name: cluster-autoscaler
    patch: |-
      - op: replace
        path: /spec/template/spec/containers/0/command/3
        value: --node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,k8s.io/cluster-autoscaler/${cluster_name}
${tls_patch}
YAML
echo "Wrote ${out_dir}/kustomization.yaml for ${repository_url}:${tag}."
echo "Apply it with: kubectl apply -k build/deploy"
