variable "region" {
  description = "AWS region of the state bucket; the other roots keep their state here."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as us-east-1."
  }
}

variable "bucket_prefix" {
  description = "Start of the bucket name; the account ID and region are appended so that the name is unique."
  type        = string
  default     = "kiusys-tfstate"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{2,20}$", var.bucket_prefix))
    error_message = "bucket_prefix must be 3 to 21 lower-case letters, digits or hyphens."
  }
}

variable "noncurrent_version_retention_days" {
  description = "Days a superseded state version is kept before it expires."
  type        = number
  default     = 90

  validation {
    condition     = var.noncurrent_version_retention_days >= 1
    error_message = "noncurrent_version_retention_days must be at least 1."
  }
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the bucket while it still holds state. Leave false outside throwaway setups."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags applied to every resource through the provider's default_tags."
  type        = map(string)
  default = {
    Project   = "kiusys"
    ManagedBy = "terraform"
    Root      = "s3-backends"
  }
}
