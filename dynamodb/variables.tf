variable "region" {
  description = "AWS region of the tables."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as us-east-1."
  }
}

variable "table_name" {
  description = "Name of the counters table (hash key `flight-route`, counter `record`)."
  type        = string
  default     = "flights-db"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,255}$", var.table_name))
    error_message = "table_name must be 3 to 255 letters, digits, underscores, dots or hyphens."
  }
}

variable "idempotency_table_name" {
  description = "Name of the idempotency-key table (hash key `idempotency-key`, TTL on `expires-at`)."
  type        = string
  default     = "flights-db-idempotency"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,255}$", var.idempotency_table_name))
    error_message = "idempotency_table_name must be 3 to 255 letters, digits, underscores, dots or hyphens."
  }
}

variable "deletion_protection" {
  description = "Refuse to delete the tables. Turn off explicitly, and apply, before `terraform destroy`."
  type        = bool
  default     = true
}

variable "replica_regions" {
  description = "Extra regions that hold replicas of both tables (a global table). Empty keeps one region."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for r in var.replica_regions : can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", r))])
    error_message = "replica_regions must hold AWS region names such as us-west-2."
  }

  validation {
    condition     = !contains(var.replica_regions, var.region) && length(distinct(var.replica_regions)) == length(var.replica_regions)
    error_message = "replica_regions must not list the tables' own region, nor a region twice."
  }
}

variable "tags" {
  description = "Tags applied to every resource through the provider's default_tags."
  type        = map(string)
  default = {
    Project   = "kiusys"
    ManagedBy = "terraform"
    Root      = "dynamodb"
  }
}
