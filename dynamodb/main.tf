locals {
  # The service's data model; see the repository README, "Exactly once".
  tables = {
    counters = {
      name     = var.table_name
      hash_key = "flight-route"
      ttl_attr = null
      # The routes of an airline, for the usage call: only route items carry `airline`, set
      # once when a route is first written, so the index costs a write once per route.
      index_key = "airline"
    }
    idempotency = {
      name      = var.idempotency_table_name
      hash_key  = "idempotency-key"
      ttl_attr  = "expires-at"
      index_key = null
    }
  }
}

resource "aws_dynamodb_table" "this" {
  for_each = local.tables

  #checkov:skip=CKV_AWS_119:Encrypted at rest with the AWS managed key (aws/dynamodb); a customer-managed key adds cost and a key policy to run without changing who may read the counts, which IAM decides.
  name                        = each.value.name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = each.value.hash_key
  deletion_protection_enabled = var.deletion_protection
  stream_enabled              = length(var.replica_regions) > 0
  stream_view_type            = length(var.replica_regions) > 0 ? "NEW_AND_OLD_IMAGES" : null

  attribute {
    name = each.value.hash_key
    type = "S"
  }

  dynamic "attribute" {
    for_each = each.value.index_key != null ? [each.value.index_key] : []

    content {
      name = attribute.value
      type = "S"
    }
  }

  dynamic "global_secondary_index" {
    for_each = each.value.index_key != null ? [each.value.index_key] : []

    content {
      name            = global_secondary_index.value
      hash_key        = global_secondary_index.value
      projection_type = "KEYS_ONLY"
    }
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }

  ttl {
    enabled        = each.value.ttl_attr != null
    attribute_name = each.value.ttl_attr != null ? each.value.ttl_attr : ""
  }

  dynamic "replica" {
    for_each = toset(var.replica_regions)

    # Encrypted with each region's AWS managed key, as the table is; tagged as the table is.
    content {
      region_name            = replica.value
      point_in_time_recovery = true
      propagate_tags         = true
    }
  }
}
