output "cluster_name" {
  description = "Name of the EKS cluster, for `aws eks update-kubeconfig`."
  value       = aws_eks_cluster.this.name
}

output "cluster_endpoint" {
  description = "URL of the cluster's API server."
  value       = aws_eks_cluster.this.endpoint
}

output "region" {
  description = "Region of the cluster."
  value       = var.region
}

output "kubernetes_version" {
  description = "Kubernetes minor version of the cluster; kubectl and the Cluster Autoscaler follow it."
  value       = aws_eks_cluster.this.version
}

output "metrics_server_chart_version" {
  description = "Version of the metrics-server Helm chart pinned for kubernetes_version (addons.tf), for the runbook's helm command."
  value       = local.pinned_addons["metrics-server"]
}

output "app_role_arn" {
  description = "IAM role for the app's ServiceAccount (IRSA); goes into its eks.amazonaws.com/role-arn annotation."
  value       = aws_iam_role.irsa["app"].arn
}

output "autoscaler_role_arn" {
  description = "IAM role for the Cluster Autoscaler's ServiceAccount (IRSA)."
  value       = aws_iam_role.irsa["autoscaler"].arn
}

output "oidc_provider_arn" {
  description = "ARN of the cluster's IAM OIDC provider."
  value       = aws_iam_openid_connect_provider.cluster.arn
}

output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "private_subnet_ids" {
  description = "IDs of the private subnets, where the nodes run."
  value       = [for s in aws_subnet.private : s.id]
}

output "public_subnet_ids" {
  description = "IDs of the public subnets, where internet-facing load balancers go."
  value       = [for s in aws_subnet.public : s.id]
}

output "load_balancer_controller_role_arn" {
  description = "IAM role for the AWS Load Balancer Controller's ServiceAccount (IRSA)."
  value       = aws_iam_role.irsa["load_balancer_controller"].arn
}

output "domain_name" {
  description = "The API's custom DNS name, or an empty string when none is set."
  value       = local.custom_domain ? var.domain_name : ""
}

output "certificate_arn" {
  description = "ARN of the ACM certificate for domain_name (issued, with hosted_zone_id; pending until its validation records exist, without), or an empty string without a custom domain."
  value = (
    local.route53_zone ? aws_acm_certificate_validation.api[0].certificate_arn :
    local.custom_domain ? aws_acm_certificate.api[0].arn : ""
  )
}

output "certificate_validation_records" {
  description = "The DNS records (name, type, value) that validate the certificate: create them at your DNS provider when there is no hosted_zone_id. Empty without a custom domain."
  value = [
    for option in flatten(aws_acm_certificate.api[*].domain_validation_options) : {
      name  = option.resource_record_name
      type  = option.resource_record_type
      value = option.resource_record_value
    }
  ]
}

output "hosted_zone_id" {
  description = "The Route53 hosted zone that external-dns may change, or an empty string without one."
  value       = local.route53_zone ? var.hosted_zone_id : ""
}

output "external_dns_role_arn" {
  description = "IAM role for external-dns's ServiceAccount (IRSA), or an empty string without a hosted zone."
  value       = local.route53_zone ? aws_iam_role.irsa["external_dns"].arn : ""
}

output "dynamodb_endpoint_id" {
  description = "ID of the DynamoDB gateway endpoint on the private route tables."
  value       = aws_vpc_endpoint.dynamodb.id
}

output "github_deploy_role_arn" {
  description = "Role that the release workflow's production job assumes to deploy (null without github_repository)."
  value       = one(aws_iam_role.github_deploy[*].arn)
}

output "regional_hostname" {
  description = "This region's own DNS name (REGION.domain_name) with regional_endpoint, or an empty string."
  value       = var.regional_endpoint ? local.regional_name : ""
}

output "health_check_id" {
  description = "The Route 53 health check of this region's endpoint with regional_endpoint, for external-dns's latency records, or an empty string."
  value       = one(aws_route53_health_check.region[*].id) != null ? one(aws_route53_health_check.region[*].id) : ""
}
