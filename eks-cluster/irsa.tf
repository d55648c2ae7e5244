# IAM roles for service accounts: each role can be assumed only by one ServiceAccount's token.
resource "aws_iam_openid_connect_provider" "cluster" {
  url            = aws_eks_cluster.this.identity[0].oidc[0].issuer
  client_id_list = ["sts.amazonaws.com"]
}

locals {
  oidc_issuer = replace(aws_iam_openid_connect_provider.cluster.url, "https://", "")

  service_accounts = {
    app                      = "system:serviceaccount:${var.app_namespace}:${var.app_service_account}"
    autoscaler               = "system:serviceaccount:kube-system:cluster-autoscaler"
    load_balancer_controller = "system:serviceaccount:kube-system:aws-load-balancer-controller"
    external_dns             = "system:serviceaccount:kube-system:external-dns"
  }
}

data "aws_iam_policy_document" "irsa_trust" {
  for_each = local.service_accounts

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.cluster.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = [each.value]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

# The app: exactly the DynamoDB calls the service makes, on its two tables only.
data "aws_dynamodb_table" "counters" {
  name = var.table_name
}

data "aws_dynamodb_table" "idempotency" {
  name = var.idempotency_table_name
}

data "aws_iam_policy_document" "app" {
  statement {
    sid       = "Counters"
    actions   = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem"]
    resources = [data.aws_dynamodb_table.counters.arn]
  }

  statement {
    sid       = "IdempotencyKeys"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem"]
    resources = [data.aws_dynamodb_table.idempotency.arn]
  }
}

resource "aws_iam_role" "app" {
  name               = "${var.cluster_name}-app"
  assume_role_policy = data.aws_iam_policy_document.irsa_trust["app"].json
}

resource "aws_iam_role_policy" "app" {
  name   = "dynamodb-counters"
  role   = aws_iam_role.app.id
  policy = data.aws_iam_policy_document.app.json
}

# The Cluster Autoscaler: read anything it must discover, resize only this cluster's groups.
data "aws_iam_policy_document" "autoscaler" {
  statement {
    #checkov:skip=CKV_AWS_356:These Describe/Get calls do not support resource-level permissions.
    sid = "Discover"
    actions = [
      "autoscaling:DescribeAutoScalingGroups",
      "autoscaling:DescribeAutoScalingInstances",
      "autoscaling:DescribeLaunchConfigurations",
      "autoscaling:DescribeScalingActivities",
      "autoscaling:DescribeTags",
      "ec2:DescribeImages",
      "ec2:DescribeInstanceTypes",
      "ec2:DescribeLaunchTemplateVersions",
      "ec2:GetInstanceTypesFromInstanceRequirements",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "DescribeOwnNodeGroups"
    actions   = ["eks:DescribeNodegroup"]
    resources = ["arn:${local.partition}:eks:${var.region}:${local.account_id}:nodegroup/${var.cluster_name}/*"]
  }

  statement {
    sid       = "ResizeOwnNodeGroups"
    actions   = ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/k8s.io/cluster-autoscaler/${var.cluster_name}"
      values   = ["owned"]
    }
  }
}

resource "aws_iam_role" "autoscaler" {
  name               = "${var.cluster_name}-cluster-autoscaler"
  assume_role_policy = data.aws_iam_policy_document.irsa_trust["autoscaler"].json
}

resource "aws_iam_role_policy" "autoscaler" {
  name   = "cluster-autoscaler"
  role   = aws_iam_role.autoscaler.id
  policy = data.aws_iam_policy_document.autoscaler.json
}
