data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:slice() below takes the first three zones by name; AWS appends new zones, so the three chosen do not change.
  state = "available"

  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  azs = slice(data.aws_availability_zones.available.names, 0, 3)

  public_subnet_cidrs  = { for i, az in local.azs : az => cidrsubnet(var.vpc_cidr, 8, i) }
  private_subnet_cidrs = { for i, az in local.azs : az => cidrsubnet(var.vpc_cidr, 4, i + 1) }
  nat_azs              = var.one_nat_gateway_per_az ? local.azs : [local.azs[0]]

  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
}

# One key for CloudWatch Logs (flow logs and control-plane logs), one for Kubernetes secrets.
# Both are administered by the account, as AWS's default key policy does.
data "aws_iam_policy_document" "key_admin" {
  #checkov:skip=CKV_AWS_109:In a key policy, Resource "*" means this key only; the account-root statement is AWS's default that lets IAM policies grant use of the key.
  #checkov:skip=CKV_AWS_111:In a key policy, Resource "*" means this key only; the account-root statement is AWS's default that lets IAM policies grant use of the key.
  #checkov:skip=CKV_AWS_356:In a key policy, Resource "*" means this key only; the account-root statement is AWS's default that lets IAM policies grant use of the key.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
}

data "aws_iam_policy_document" "logs_key" {
  #checkov:skip=CKV_AWS_109:In a key policy, Resource "*" means this key only; the statements add CloudWatch Logs' use of it to the account-root default.
  #checkov:skip=CKV_AWS_111:In a key policy, Resource "*" means this key only; the statements add CloudWatch Logs' use of it to the account-root default.
  #checkov:skip=CKV_AWS_356:In a key policy, Resource "*" means this key only; the statements add CloudWatch Logs' use of it to the account-root default.
  source_policy_documents = [data.aws_iam_policy_document.key_admin.json]

  statement {
    sid       = "CloudWatchLogsUses"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:*"]
    }
  }
}

resource "aws_kms_key" "logs" {
  description         = "${var.cluster_name}: CloudWatch Logs"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.logs_key.json
}

resource "aws_kms_alias" "logs" {
  name          = "alias/${var.cluster_name}-logs"
  target_key_id = aws_kms_key.logs.key_id
}

resource "aws_kms_key" "secrets" {
  description         = "${var.cluster_name}: Kubernetes secrets envelope encryption"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.key_admin.json
}

resource "aws_kms_alias" "secrets" {
  name          = "alias/${var.cluster_name}-secrets"
  target_key_id = aws_kms_key.secrets.key_id
}
