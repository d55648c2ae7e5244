#!/usr/bin/env bash
# Writes build/deploy/: a kustomization of the manifests in this folder, and the Helm values of
# the AWS Load Balancer Controller (and of external-dns, with a custom domain), filled with what
# only `terraform output` knows: the ECR image, the IRSA role ARNs, the region, the cluster and
# VPC, the certificate and the domain, and with tables in several regions, the regions, this
# region's image replica and the latency record's health check. The folder is git-ignored, so no account ID ever lands in
# the repository.
#
# Usage: kubernetes/configure.sh IMAGE_TAG|IMAGE_DIGEST     (--help: this text)
#   IMAGE_TAG                    an immutable tag pushed to the ECR repository (not `latest`)
#   IMAGE_DIGEST                 sha256:<64 hex digits>, the image pushed by digest (the release
#                                workflow deploys this way)
#   TF_OUTPUT_<NAME>=value       use this instead of `terraform output NAME` (NAME upper-cased,
#                                e.g. TF_OUTPUT_REPOSITORY_URL); where no state is at hand, as in
#                                the release workflow, every output it reads comes this way
#   ACM_CERTIFICATE_ARN=arn:...  serve TLS (only) with this certificate instead of the one the
#                                eks-cluster root issued for its domain_name (optional)
#   SEND_API_KEYS_IN_CLEAR_TEXT=yes
#                                without a certificate, serve plain HTTP on port 80 anyway: every
#                                API key then crosses the internet readable (refused otherwise)
#   PROMETHEUS_RELEASE=NAME      add the monitoring component (PodMonitor, PrometheusRule,
#                                Grafana dashboard), labelled for the kube-prometheus-stack
#                                Helm release NAME (optional)
set -o errexit -o nounset -o pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0" # the comment above
  exit 0
fi

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo_root
readonly out_dir="${repo_root}/build/deploy"

die() {
  echo "configure.sh: $*" >&2
  exit 2
}

image="${1:-}"
[[ -n "${image}" ]] || die "usage: kubernetes/configure.sh IMAGE_TAG|IMAGE_DIGEST"
if [[ "${image}" == sha256:* ]]; then
  [[ "${image}" =~ ^sha256:[0-9a-f]{64}$ ]] || die "'${image}' is not an image digest (sha256:<64 hex digits>)"
  image_field="digest: ${image}"
else
  [[ "${image}" != "latest" ]] || die "use an immutable tag (the ECR repository refuses to overwrite tags), not 'latest'"
  [[ "${image}" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "'${image}' is not a valid image tag"
  image_field="newTag: ${image}"
fi

# An output of a root, from TF_OUTPUT_<NAME> when that is set, else from its state; with
# `optional`, an empty one is fine.
tf_output() {
  local value override
  override="TF_OUTPUT_$(printf '%s' "$2" | tr '[:lower:]' '[:upper:]')"
  if [[ -n "${!override+set}" ]]; then
    value="${!override}"
  else
    value="$(terraform -chdir="${repo_root}/$1" output -raw "$2")" || die "cannot read output '$2' of $1/; apply it first"
  fi
  [[ -n "${value}" || "${3:-}" == optional ]] || die "output '$2' of $1/ is empty"
  printf '%s' "${value}"
}

repository_url="$(tf_output ecr-repo repository_url)"
region="$(tf_output eks-cluster region)"
cluster_name="$(tf_output eks-cluster cluster_name)"
vpc_id="$(tf_output eks-cluster vpc_id)"
app_role_arn="$(tf_output eks-cluster app_role_arn)"
autoscaler_role_arn="$(tf_output eks-cluster autoscaler_role_arn)"
lb_controller_role_arn="$(tf_output eks-cluster load_balancer_controller_role_arn)"
domain_name="$(tf_output eks-cluster domain_name optional)"
hosted_zone_id="$(tf_output eks-cluster hosted_zone_id optional)"
certificate_arn="${ACM_CERTIFICATE_ARN:-$(tf_output eks-cluster certificate_arn optional)}"
if [[ -z "${certificate_arn}" && "${SEND_API_KEYS_IN_CLEAR_TEXT:-}" != yes ]]; then
  die "no TLS certificate, so API keys would cross the internet in clear text: set domain_name" \
    "in eks-cluster (or ACM_CERTIFICATE_ARN), or SEND_API_KEYS_IN_CLEAR_TEXT=yes to accept that"
fi

# Tables in several regions: the pods count across them (KIUSYS_REGIONS), pull the image from
# this region's replica, and with a hosted zone, external-dns writes this region's latency record.
regions="$(tf_output dynamodb regions optional)"
regions_literal=""
health_check_id=""
regional_hostname=""
if [[ -n "${regions}" ]]; then
  [[ ",${regions}," == *",${region},"* ]] ||
    die "the cluster's region ${region} is not one of the tables' regions (${regions}):" \
      "add it to replica_regions in dynamodb/ and ecr-repo/ first"
  regions_literal="- KIUSYS_REGIONS=${regions}"
  repository_url="$(sed -E "s/\.dkr\.ecr\.[a-z0-9-]+\./.dkr.ecr.${region}./" <<<"${repository_url}")"
  if [[ -n "${hosted_zone_id}" ]]; then
    health_check_id="$(tf_output eks-cluster health_check_id optional)"
    regional_hostname="$(tf_output eks-cluster regional_hostname optional)"
    [[ -n "${health_check_id}" && -n "${regional_hostname}" ]] ||
      die "the tables are in several regions (${regions}): apply eks-cluster with" \
        "regional_endpoint=true, so that DNS can leave out a region that fails"
  fi
fi

prometheus_release="${PROMETHEUS_RELEASE:-}"

components=""
add_component() {
  components="${components:-components:}
  - ../../kubernetes/components/$1"
}
service_patches=""
if [[ -n "${certificate_arn}" ]]; then
  [[ "${certificate_arn}" =~ ^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]+$ ]] ||
    die "'${certificate_arn}' is not an ACM certificate ARN"
  add_component tls
  service_patches="      - op: add
        path: /metadata/annotations/service.beta.kubernetes.io~1aws-load-balancer-ssl-cert
        value: ${certificate_arn}"
fi
if [[ -n "${regional_hostname}" ]]; then
  # external-dns points both names at this region's load balancer, as latency records of this
  # region that Route 53 answers only while the region's health check passes.
  service_patches="${service_patches}
      - op: add
        path: /metadata/annotations/external-dns.alpha.kubernetes.io~1hostname
        value: ${domain_name},${regional_hostname}
      - op: add
        path: /metadata/annotations/external-dns.alpha.kubernetes.io~1set-identifier
        value: ${region}
      - op: add
        path: /metadata/annotations/external-dns.alpha.kubernetes.io~1aws-region
        value: ${region}
      - op: add
        path: /metadata/annotations/external-dns.alpha.kubernetes.io~1aws-health-check-id
        value: ${health_check_id}"
elif [[ -n "${hosted_zone_id}" ]]; then
  # external-dns points this name at the load balancer.
  service_patches="${service_patches}
      - op: add
        path: /metadata/annotations/external-dns.alpha.kubernetes.io~1hostname
        value: ${domain_name}"
fi
monitoring_patch=""
if [[ -n "${prometheus_release}" ]]; then
  # Helm's rule for release names.
  [[ "${prometheus_release}" =~ ^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$ ]] ||
    die "'${prometheus_release}' is not a Helm release name"
  add_component monitoring
  # kube-prometheus-stack's Prometheus selects PodMonitors and PrometheusRules by this label.
  monitoring_patch="  - target:
      group: monitoring.coreos.com
    patch: |-
      - op: replace
        path: /metadata/labels/release
        value: ${prometheus_release}"
fi
service_patch=""
if [[ -n "${service_patches}" ]]; then
  service_patch="  - target:
      kind: Service
      name: kiusys-app
    patch: |-
${service_patches}"
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
    ${image_field}

configMapGenerator:
  - name: kiusys-app-config
    namespace: kiusys
    behavior: merge
    literals:
      - AWS_REGION=${region}
      ${regions_literal}

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
      - op: replace
        path: /spec/template/spec/containers/0/env/0/value
        value: ${region}
${service_patch}
${monitoring_patch}
YAML

cat >"${out_dir}/aws-load-balancer-controller.values.yaml" <<YAML
# Written by kubernetes/configure.sh; Helm values of the AWS Load Balancer Controller.
clusterName: ${cluster_name}
region: ${region}
vpcId: ${vpc_id}
serviceAccount:
  create: true
  name: aws-load-balancer-controller
  annotations:
    eks.amazonaws.com/role-arn: ${lb_controller_role_arn}
YAML
echo "Wrote ${out_dir}/kustomization.yaml for ${repository_url} at ${image}"
echo "and ${out_dir}/aws-load-balancer-controller.values.yaml."

if [[ -n "${hosted_zone_id}" ]]; then
  external_dns_role_arn="$(tf_output eks-cluster external_dns_role_arn)"
  cat >"${out_dir}/external-dns.values.yaml" <<YAML
# Written by kubernetes/configure.sh; Helm values of external-dns.
provider:
  name: aws
sources:
  - service
# Only this name, in the one zone that holds it, which may be a parent's zone (example.com for
# api.example.com): a domain filter alone would skip a zone whose name it does not match.
domainFilters:
  - ${domain_name}
extraArgs:
  zone-id-filter:
    - ${hosted_zone_id}
  aws-zone-match-parent: true
# sync: the record goes when the Service goes; TXT records mark which ones this cluster owns.
policy: sync
registry: txt
txtOwnerId: ${cluster_name}
env:
  - name: AWS_DEFAULT_REGION
    value: ${region}
serviceAccount:
  create: true
  name: external-dns
  annotations:
    eks.amazonaws.com/role-arn: ${external_dns_role_arn}
YAML
  echo "Wrote ${out_dir}/external-dns.values.yaml for ${domain_name}."
fi
