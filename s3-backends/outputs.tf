output "bucket_name" {
  description = "Name of the remote-state bucket."
  value       = aws_s3_bucket.state.id
}

output "bucket_arn" {
  description = "ARN of the remote-state bucket."
  value       = aws_s3_bucket.state.arn
}

output "region" {
  description = "Region of the remote-state bucket."
  value       = var.region
}

output "backend_config" {
  description = "Partial S3 backend configuration for the other roots: write it to a file and pass it to `terraform init -backend-config=FILE`."
  value       = <<-EOT
    bucket       = "${aws_s3_bucket.state.id}"
    region       = "${var.region}"
    encrypt      = true
    use_lockfile = true
  EOT
}
