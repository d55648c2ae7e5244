output "repository_url" {
  description = "URL of the repository, the image name without a tag."
  value       = aws_ecr_repository.app.repository_url
}

output "repository_arn" {
  description = "ARN of the repository."
  value       = aws_ecr_repository.app.arn
}

output "region" {
  description = "Region of the repository, for `aws ecr get-login-password`."
  value       = var.region
}

output "github_push_role_arn" {
  description = "Role that the release workflow assumes to push images (null without github_repository)."
  value       = one(aws_iam_role.github_push[*].arn)
}
