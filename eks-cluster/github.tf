# Optional: the release workflow deploys with no stored AWS key. A role that only a workflow job
# in this repository's `production` environment can assume (through GitHub's OIDC provider,
# which the ecr-repo root makes), that may describe this cluster, and that an access entry maps
# to the edit policy in the app's namespace alone. Nothing here exists unless github_repository
# is set.
locals {
  github              = var.github_repository != null
  github_oidc_host    = "token.actions.githubusercontent.com"
  github_deploy_scope = "repo:${coalesce(var.github_repository, "-")}:environment:production"
}

data "aws_iam_openid_connect_provider" "github" {
  count = local.github ? 1 : 0

  url = "https://${local.github_oidc_host}"
}

data "aws_iam_policy_document" "github_deploy_trust" {
  count = local.github ? 1 : 0

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [data.aws_iam_openid_connect_provider.github[0].arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.github_oidc_host}:aud"
      values   = ["sts.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.github_oidc_host}:sub"
      values   = [local.github_deploy_scope]
    }
  }
}

# `aws eks update-kubeconfig` needs DescribeCluster; what it may do inside the cluster is the
# access entry's business.
data "aws_iam_policy_document" "github_deploy" {
  statement {
    actions   = ["eks:DescribeCluster"]
    resources = [aws_eks_cluster.this.arn]
  }
}

resource "aws_iam_role" "github_deploy" {
  count = local.github ? 1 : 0

  name               = "${var.cluster_name}-github-deploy"
  assume_role_policy = data.aws_iam_policy_document.github_deploy_trust[0].json
}

resource "aws_iam_role_policy" "github_deploy" {
  count = local.github ? 1 : 0

  name   = "describe-cluster"
  role   = aws_iam_role.github_deploy[0].id
  policy = data.aws_iam_policy_document.github_deploy.json
}

resource "aws_eks_access_entry" "github_deploy" {
  count = local.github ? 1 : 0

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = aws_iam_role.github_deploy[0].arn
  type          = "STANDARD"
}

resource "aws_eks_access_policy_association" "github_deploy" {
  count = local.github ? 1 : 0

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = aws_eks_access_entry.github_deploy[0].principal_arn
  policy_arn    = "arn:${local.partition}:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"

  access_scope {
    type       = "namespace"
    namespaces = [var.app_namespace]
  }
}
