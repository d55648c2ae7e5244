variable "region" {
  description = "AWS region of the VPC and the cluster."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as us-east-1."
  }
}

variable "cluster_name" {
  description = "Name of the EKS cluster; also names the VPC and the IAM roles."
  type        = string
  default     = "kiusys"

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,37}$", var.cluster_name))
    error_message = "cluster_name must start with a letter and hold at most 38 letters, digits or hyphens."
  }
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the control plane and nodes; keep it in EKS standard support."
  type        = string
  default     = "1.35"

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version must be a minor version such as 1.35."
  }

  validation {
    condition     = contains(keys(local.addon_versions), var.kubernetes_version)
    error_message = "kubernetes_version has no pinned add-on versions: add its row to addon_versions in addons.tf (aws eks describe-addon-versions lists them)."
  }
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC; it is split into 3 public /24 and 3 private /20 subnets."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && tonumber(split("/", var.vpc_cidr)[1]) <= 16
    error_message = "vpc_cidr must be an IPv4 CIDR block of /16 or larger."
  }
}

variable "one_nat_gateway_per_az" {
  description = "One NAT gateway in each AZ (survives an AZ outage) instead of a single shared one (cheaper)."
  type        = bool
  default     = false
}

variable "public_access_cidrs" {
  description = "CIDR blocks allowed to reach the cluster's public API endpoint. Empty keeps the endpoint private."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.public_access_cidrs : can(cidrnetmask(c)) && c != "0.0.0.0/0"])
    error_message = "public_access_cidrs must hold IPv4 CIDR blocks, and not 0.0.0.0/0."
  }
}

variable "node_groups" {
  description = "Managed node groups, by name: instance types and the sizes the Cluster Autoscaler moves between."
  type = map(object({
    instance_types = list(string)
    min_size       = number
    max_size       = number
    desired_size   = number
  }))
  # One group: the cluster add-ons, the controllers and the app share its nodes. A second group
  # without a taint isolated nothing; two nodes at least keep every add-on and the app on two.
  default = {
    general = { instance_types = ["t3.large"], min_size = 2, max_size = 4, desired_size = 2 }
  }

  validation {
    condition = alltrue([
      for g in values(var.node_groups) : g.min_size >= 0 && g.min_size <= g.desired_size && g.desired_size <= g.max_size
    ])
    error_message = "Each node group needs min_size <= desired_size <= max_size."
  }
}

variable "app_namespace" {
  description = "Kubernetes namespace of the app's ServiceAccount, the only one that may assume the app role."
  type        = string
  default     = "kiusys"
}

variable "app_service_account" {
  description = "Name of the app's ServiceAccount, the only one that may assume the app role."
  type        = string
  default     = "kiusys-app"
}

variable "table_name" {
  description = "Counters table created by the dynamodb root; the app role may use only it and the idempotency table."
  type        = string
  default     = "flights-db"
}

variable "idempotency_table_name" {
  description = "Idempotency-key table created by the dynamodb root."
  type        = string
  default     = "flights-db-idempotency"
}

variable "log_retention_days" {
  description = "Days that VPC flow logs and control-plane logs are kept in CloudWatch Logs."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts, such as 365."
  }
}

variable "github_repository" {
  description = "GitHub repository whose `production` environment may deploy the app through OIDC, written as in ecr-repo (which makes GitHub's OIDC provider). null makes no GitHub role."
  type        = string
  default     = null

  validation {
    condition     = var.github_repository == null || can(regex("^[A-Za-z0-9-]+(@[0-9]+)?/[A-Za-z0-9._-]+(@[0-9]+)?$", var.github_repository))
    error_message = "github_repository must be OWNER/NAME or OWNER@ORG_ID/NAME@REPO_ID, such as example-org/kiusys."
  }
}

variable "flow_log_traffic_type" {
  description = "Which VPC flow logs to keep: REJECT (refused traffic only, the default and the cheaper), ALL (for forensics of accepted connections too) or ACCEPT."
  type        = string
  default     = "REJECT"

  validation {
    condition     = contains(["ACCEPT", "REJECT", "ALL"], var.flow_log_traffic_type)
    error_message = "flow_log_traffic_type must be ACCEPT, REJECT or ALL."
  }
}

variable "tags" {
  description = "Tags applied to every resource through the provider's default_tags."
  type        = map(string)
  default = {
    Project   = "kiusys"
    ManagedBy = "terraform"
    Root      = "eks-cluster"
  }
}

variable "admin_principal_arns" {
  description = "IAM principals (roles or users) made cluster administrators through EKS access entries, besides the cluster's creator."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.admin_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$", arn))])
    error_message = "admin_principal_arns must hold IAM role or user ARNs."
  }
}

variable "domain_name" {
  description = "Optional DNS name for the API, such as api.example.com: an ACM certificate (DNS-validated) is made for it, so that the load balancer serves TLS. With hosted_zone_id, validation and the DNS record are automatic; without, create the certificate_validation_records and the record at your DNS provider."
  type        = string
  default     = null

  validation {
    condition     = var.domain_name == null || can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.domain_name))
    error_message = "domain_name must be a lower-case DNS name such as api.example.com."
  }

  validation {
    condition     = var.hosted_zone_id == null || var.domain_name != null
    error_message = "hosted_zone_id is the Route53 zone of domain_name: set domain_name too."
  }
}

variable "regional_endpoint" {
  description = "Serve domain_name from several regions: also name this region's endpoint REGION.domain_name (in the certificate too) and health-check its /regionz from Route 53, for the latency records external-dns writes. Set it in every region; needs hosted_zone_id."
  type        = bool
  default     = false

  validation {
    condition     = !var.regional_endpoint || var.hosted_zone_id != null
    error_message = "regional_endpoint needs hosted_zone_id: the latency records and their health checks are Route53's."
  }
}

variable "hosted_zone_id" {
  description = "Optional Route53 public hosted zone of domain_name or of a parent of it (example.com for api.example.com): the certificate is validated there and external-dns may change the domain's records in it."
  type        = string
  default     = null

  validation {
    condition     = var.hosted_zone_id == null || can(regex("^[A-Z0-9]{1,32}$", var.hosted_zone_id))
    error_message = "hosted_zone_id must be a Route53 hosted zone ID such as Z0123456789ABCDEFGHIJ."
  }
}
