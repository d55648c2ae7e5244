variable "region" {
  description = "AWS region of the image repository."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as us-east-1."
  }
}

variable "repository_name" {
  description = "Name of the image repository."
  type        = string
  default     = "kiusys-app"

  validation {
    condition     = can(regex("^[a-z0-9]+([._/-][a-z0-9]+)*$", var.repository_name))
    error_message = "repository_name must be lower-case letters and digits, separated by . _ / or -."
  }
}

variable "tagged_images_to_keep" {
  description = "How many tagged images the lifecycle policy keeps; older ones expire."
  type        = number
  default     = 30

  validation {
    condition     = var.tagged_images_to_keep >= 1
    error_message = "tagged_images_to_keep must be at least 1."
  }
}

variable "untagged_image_expiry_days" {
  description = "Days after which an untagged image expires."
  type        = number
  default     = 7

  validation {
    condition     = var.untagged_image_expiry_days >= 1
    error_message = "untagged_image_expiry_days must be at least 1."
  }
}

variable "replica_regions" {
  description = "Regions whose registry gets a copy of every image pushed (the regions of the dynamodb root's replica_regions). Empty keeps one region."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for r in var.replica_regions : can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", r))]) && !contains(var.replica_regions, var.region)
    error_message = "replica_regions must hold AWS region names such as us-west-2, other than region."
  }
}

variable "github_repository" {
  description = "GitHub repository whose main-branch workflows may push images through OIDC, as its OIDC sub claim names it: OWNER/NAME, or OWNER@ORG_ID/NAME@REPO_ID where GitHub emits immutable subject claims. null makes no GitHub role."
  type        = string
  default     = null

  validation {
    condition     = var.github_repository == null || can(regex("^[A-Za-z0-9-]+(@[0-9]+)?/[A-Za-z0-9._-]+(@[0-9]+)?$", var.github_repository))
    error_message = "github_repository must be OWNER/NAME or OWNER@ORG_ID/NAME@REPO_ID, such as example-org/kiusys."
  }
}

variable "tags" {
  description = "Tags applied to every resource through the provider's default_tags."
  type        = map(string)
  default = {
    Project   = "kiusys"
    ManagedBy = "terraform"
    Root      = "ecr-repo"
  }
}
