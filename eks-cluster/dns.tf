# An optional custom domain: an ACM certificate for it, validated by DNS. With a Route53 hosted
# zone (hosted_zone_id, the zone of the domain or of any parent of it), the validation records
# are made here and the apply waits until the certificate is issued, and external-dns gets a role
# (irsa.tf) to point the domain at the Service's load balancer. Without one, the DNS provider is
# somebody else's: the certificate_validation_records output lists the CNAMEs to create there.
locals {
  custom_domain = var.domain_name != null
  route53_zone  = var.hosted_zone_id != null
  # With regional_endpoint: this region's own name, which the certificate covers too, external-dns
  # points at this region's load balancer, and Route 53 health-checks for the latency records.
  regional_name = var.regional_endpoint ? "${var.region}.${coalesce(var.domain_name, "-")}" : null
  domain_names  = compact([lower(coalesce(var.domain_name, "-")), local.regional_name])
  hosted_zone   = "arn:${local.partition}:route53:::hostedzone/${coalesce(var.hosted_zone_id, "-")}"
  validation_options = {
    for option in flatten(aws_acm_certificate.api[*].domain_validation_options) :
    option.domain_name => option
  }
}

resource "aws_acm_certificate" "api" {
  count = local.custom_domain ? 1 : 0

  domain_name               = var.domain_name
  subject_alternative_names = var.regional_endpoint ? [local.regional_name] : []
  validation_method         = "DNS"

  lifecycle {
    create_before_destroy = true
  }
}

# One record per name the certificate covers. Keyed by those names, which are known at plan: the
# certificate's validation options are not, once it has a subject alternative name.
resource "aws_route53_record" "certificate_validation" {
  for_each = local.route53_zone ? toset(local.domain_names) : toset([])

  zone_id         = var.hosted_zone_id
  name            = local.validation_options[each.key].resource_record_name
  type            = local.validation_options[each.key].resource_record_type
  records         = [local.validation_options[each.key].resource_record_value]
  ttl             = 300
  allow_overwrite = true
}

# Waits until ACM has issued the certificate, so that the load balancer's TLS listener can use it.
resource "aws_acm_certificate_validation" "api" {
  count = local.route53_zone ? 1 : 0

  certificate_arn         = aws_acm_certificate.api[0].arn
  validation_record_fqdns = [for record in aws_route53_record.certificate_validation : record.fqdn]
}

# external-dns: change only the domain's own records (and its TXT ownership records) in the one
# hosted zone; list zones to find it. As its AWS tutorial lists them, narrowed to the zone.
data "aws_iam_policy_document" "external_dns" {
  statement {
    sid       = "ChangeTheDomainsRecords"
    actions   = ["route53:ChangeResourceRecordSets"]
    resources = [local.hosted_zone]

    condition {
      test     = "ForAllValues:StringLike"
      variable = "route53:ChangeResourceRecordSetsNormalizedRecordNames"
      values   = concat(local.domain_names, [for name in local.domain_names : "*-${name}"])
    }

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "route53:ChangeResourceRecordSetsRecordTypes"
      values   = ["A", "AAAA", "CNAME", "TXT"]
    }
  }

  statement {
    sid       = "ReadTheZone"
    actions   = ["route53:ListResourceRecordSets", "route53:ListTagsForResources"]
    resources = [local.hosted_zone]
  }

  statement {
    #checkov:skip=CKV_AWS_356:ListHostedZones supports no resource-level permissions.
    sid       = "FindTheZone"
    actions   = ["route53:ListHostedZones"]
    resources = ["*"]
  }
}

# Several regions: the latency records of domain_name (external-dns writes them, one per region)
# keep this region only while this check passes. It asks /regionz, which fails while this region's
# store is out of reach (not on throttling), over HTTPS with SNI, from Route 53's checkers.
resource "aws_route53_health_check" "region" {
  count = var.regional_endpoint ? 1 : 0

  fqdn              = local.regional_name
  port              = 443
  type              = "HTTPS"
  resource_path     = "/regionz"
  enable_sni        = true
  request_interval  = 30
  failure_threshold = 3

  tags = {
    Name = "${var.cluster_name}-${var.region}"
  }
}
