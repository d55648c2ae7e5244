# IAM roles for service accounts: each role can be assumed only by one ServiceAccount's token.
resource "aws_iam_openid_connect_provider" "cluster" {
  url            = aws_eks_cluster.this.identity[0].oidc[0].issuer
  client_id_list = ["sts.amazonaws.com"]
}

locals {
  oidc_issuer = replace(aws_iam_openid_connect_provider.cluster.url, "https://", "")

  # Each role: the one ServiceAccount that may assume it, the role's name after the cluster's,
  # and its inline policy (documents in this file, load_balancer_controller.tf and dns.tf).
  irsa_roles = merge(
    {
      app = {
        service_account = "system:serviceaccount:${var.app_namespace}:${var.app_service_account}"
        name            = "app"
        policy_name     = "dynamodb-counters"
        policy          = data.aws_iam_policy_document.app.json
      }
      autoscaler = {
        service_account = "system:serviceaccount:kube-system:cluster-autoscaler"
        name            = "cluster-autoscaler"
        policy_name     = "cluster-autoscaler"
        policy          = data.aws_iam_policy_document.autoscaler.json
      }
      load_balancer_controller = {
        service_account = "system:serviceaccount:kube-system:aws-load-balancer-controller"
        name            = "aws-load-balancer-controller"
        policy_name     = "aws-load-balancer-controller"
        policy          = data.aws_iam_policy_document.load_balancer_controller.json
      }
    },
    local.route53_zone ? {
      external_dns = {
        service_account = "system:serviceaccount:kube-system:external-dns"
        name            = "external-dns"
        policy_name     = "external-dns"
        policy          = data.aws_iam_policy_document.external_dns.json
      }
    } : {},
  )
}

data "aws_iam_policy_document" "irsa_trust" {
  for_each = local.irsa_roles

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.cluster.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = [each.value.service_account]
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

locals {
  # The counters table's index of routes by airline (the dynamodb root's `airline`).
  airline_index_arn = "${data.aws_dynamodb_table.counters.arn}/index/airline"
}

data "aws_iam_policy_document" "app" {
  statement {
    sid = "Counters"
    # PutItem: a closed day's count, in an item of its own.
    actions = [
      "dynamodb:GetItem",
      "dynamodb:BatchGetItem",
      "dynamodb:UpdateItem",
      "dynamodb:PutItem",
    ]
    resources = [data.aws_dynamodb_table.counters.arn]
  }

  statement {
    sid       = "RoutesByAirline"
    actions   = ["dynamodb:Query"]
    resources = [local.airline_index_arn]
  }

  statement {
    sid       = "IdempotencyKeys"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem"]
    resources = [data.aws_dynamodb_table.idempotency.arn]
  }
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

resource "aws_iam_role" "irsa" {
  for_each = local.irsa_roles

  name               = "${var.cluster_name}-${each.value.name}"
  assume_role_policy = data.aws_iam_policy_document.irsa_trust[each.key].json
}

resource "aws_iam_role_policy" "irsa" {
  for_each = local.irsa_roles

  name   = each.value.policy_name
  role   = aws_iam_role.irsa[each.key].id
  policy = each.value.policy
}

# The app's and the autoscaler's roles had resources of their own before.
moved {
  from = aws_iam_role.app
  to   = aws_iam_role.irsa["app"]
}

moved {
  from = aws_iam_role_policy.app
  to   = aws_iam_role_policy.irsa["app"]
}

moved {
  from = aws_iam_role.autoscaler
  to   = aws_iam_role.irsa["autoscaler"]
}

moved {
  from = aws_iam_role_policy.autoscaler
  to   = aws_iam_role_policy.irsa["autoscaler"]
}
