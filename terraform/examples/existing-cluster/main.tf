# Bootstrap ArgoCD and the app-of-apps on a cluster you already have.
#   terraform init && terraform apply -var repo_url=https://git.example.com/data-platform/clientpipelines.git

terraform {
  required_version = ">= 1.6.0"
  required_providers {
    helm = { source = "hashicorp/helm", version = "~> 2.17" }
  }
}

variable "kubeconfig" {
  description = "Path of the kubeconfig for the target cluster."
  type        = string
  default     = "~/.kube/config"
}

variable "kube_context" {
  description = "Context in the kubeconfig to use."
  type        = string
  default     = null
}

variable "repo_url" {
  description = "Git URL of this repository."
  type        = string
}

provider "helm" {
  kubernetes {
    config_path    = var.kubeconfig
    config_context = var.kube_context
  }
}


module "bootstrap" {
  source   = "../../modules/argocd-bootstrap"
  repo_url = var.repo_url
}

output "root_application" {
  description = "The root Application ArgoCD syncs."
  value       = module.bootstrap.root_application
}
