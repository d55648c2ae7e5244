# An optional custom domain: an ACM certificate for it, validated by DNS. With a Route53 hosted
# zone (hosted_zone_id, the zone of the domain or of any parent of it), the validation records
# are made here and the apply waits until the certificate is issued, and external-dns gets a role
# (irsa.tf) to point the domain at the Service's load balancer. Without one, the DNS provider is
# somebody else's: the certificate_validation_records output lists the CNAMEs to create there.
locals {
  custom_domain = var.domain_name != null
  route53_zone  = var.hosted_zone_id != null
  hosted_zone   = "arn:${local.partition}:route53:::hostedzone/${coalesce(var.hosted_zone_id, "-")}"
}

resource "aws_acm_certificate" "api" {
  count = local.custom_domain ? 1 : 0

  domain_name       = var.domain_name
  validation_method = "DNS"

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "certificate_validation" {
  for_each = {
    for option in flatten(aws_acm_certificate.api[*].domain_validation_options) :
    option.domain_name => option if local.route53_zone
  }

  zone_id         = var.hosted_zone_id
  name            = each.value.resource_record_name
  type            = each.value.resource_record_type
  records         = [each.value.resource_record_value]
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
      values   = [lower(coalesce(var.domain_name, "-")), "*-${lower(coalesce(var.domain_name, "-"))}"]
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
