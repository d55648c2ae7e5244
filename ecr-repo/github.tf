# Optional: GitHub Actions pushes images with no stored AWS key. GitHub's OIDC provider (one per
# account; eks-cluster reads it back), and a role that only a workflow run on this repository's
# main branch can assume, with push rights on this one repository. Nothing here exists unless
# github_repository is set.
locals {
  github            = var.github_repository != null
  github_oidc_host  = "token.actions.githubusercontent.com"
  github_push_scope = "repo:${coalesce(var.github_repository, "-")}:ref:refs/heads/main"
}

resource "aws_iam_openid_connect_provider" "github" {
  count = local.github ? 1 : 0

  url            = "https://${local.github_oidc_host}"
  client_id_list = ["sts.amazonaws.com"]
}

data "aws_iam_policy_document" "github_push_trust" {
  count = local.github ? 1 : 0

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.github[0].arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.github_oidc_host}:aud"
      values   = ["sts.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.github_oidc_host}:sub"
      values   = [local.github_push_scope]
    }
  }
}

data "aws_iam_policy_document" "github_push" {
  statement {
    #checkov:skip=CKV_AWS_356:GetAuthorizationToken supports no resource-level permissions.
    sid       = "LogInToTheRegistry"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "PushAndReadTheScanOfThisRepository"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:CompleteLayerUpload",
      "ecr:DescribeImageScanFindings",
      "ecr:DescribeImages",
      "ecr:InitiateLayerUpload",
      "ecr:PutImage",
      "ecr:UploadLayerPart",
    ]
    resources = [aws_ecr_repository.app.arn]
  }
}

resource "aws_iam_role" "github_push" {
  count = local.github ? 1 : 0

  name               = "${var.repository_name}-github-push"
  assume_role_policy = data.aws_iam_policy_document.github_push_trust[0].json
}

resource "aws_iam_role_policy" "github_push" {
  count = local.github ? 1 : 0

  name   = "ecr-push"
  role   = aws_iam_role.github_push[0].id
  policy = data.aws_iam_policy_document.github_push.json
}
