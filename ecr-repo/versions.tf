terraform {
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # Partial configuration: bucket, region and locking come from s3-backends' backend_config output.
  backend "s3" {
    key = "ecr-repo/terraform.tfstate"
  }
}
