output "table_name" {
  description = "Name of the counters table."
  value       = aws_dynamodb_table.this["counters"].name
}

output "table_arn" {
  description = "ARN of the counters table."
  value       = aws_dynamodb_table.this["counters"].arn
}

output "idempotency_table_name" {
  description = "Name of the idempotency-key table."
  value       = aws_dynamodb_table.this["idempotency"].name
}

output "idempotency_table_arn" {
  description = "ARN of the idempotency-key table."
  value       = aws_dynamodb_table.this["idempotency"].arn
}

output "regions" {
  description = "Every region of the tables, home first, comma-separated: the service's KIUSYS_REGIONS. Empty for tables in one region."
  value       = length(var.replica_regions) > 0 ? join(",", concat([var.region], var.replica_regions)) : ""
}
