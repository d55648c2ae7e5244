# DynamoDB through a gateway endpoint on the private route tables: the app's calls stay on the
# AWS network instead of crossing a NAT gateway (no NAT data charge, no NAT in the path).
# The endpoint's policy admits only the service's two tables: the calls the app makes, and the
# ones Terraform's dynamodb root makes when an operator applies it from inside the VPC.
data "aws_iam_policy_document" "dynamodb_endpoint" {
  statement {
    sid = "ServiceCalls"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:BatchGetItem",
      "dynamodb:UpdateItem",
      "dynamodb:PutItem",
      "dynamodb:Query",
    ]
    resources = concat(local.service_table_arns, [local.airline_index_arn])

    principals {
      type        = "*"
      identifiers = ["*"]
    }
  }

  statement {
    sid = "TerraformManagesTheTables"
    actions = [
      "dynamodb:CreateTable",
      "dynamodb:DeleteTable",
      "dynamodb:DescribeTable",
      "dynamodb:UpdateTable",
      "dynamodb:DescribeContinuousBackups",
      "dynamodb:UpdateContinuousBackups",
      "dynamodb:DescribeTimeToLive",
      "dynamodb:UpdateTimeToLive",
      "dynamodb:ListTagsOfResource",
      "dynamodb:TagResource",
      "dynamodb:UntagResource",
    ]
    resources = local.service_table_arns

    principals {
      type        = "*"
      identifiers = ["*"]
    }
  }
}

locals {
  service_table_arns = [
    data.aws_dynamodb_table.counters.arn,
    data.aws_dynamodb_table.idempotency.arn,
  ]
}

resource "aws_vpc_endpoint" "dynamodb" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${var.region}.dynamodb"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [for table in aws_route_table.private : table.id]
  policy            = data.aws_iam_policy_document.dynamodb_endpoint.json

  tags = { Name = "${var.cluster_name}-dynamodb" }
}
