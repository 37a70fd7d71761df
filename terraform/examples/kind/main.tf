# A kind cluster, then ArgoCD and the app-of-apps on it (needs Docker).
#   terraform init && terraform apply -var repo_url=https://git.example.com/data-platform/clientpipelines.git

terraform {
  required_version = ">= 1.6.0"
  required_providers {
    kind = { source = "tehcyx/kind", version = "~> 0.9" }
    helm = { source = "hashicorp/helm", version = "~> 2.17" }
  }
}

variable "repo_url" {
  description = "Git URL of this repository."
  type        = string
}

variable "node_image" {
  description = "kind node image, pinned to the Kubernetes minor the project tests against."
  type        = string
  default     = "kindest/node:v1.34.0"
}

resource "kind_cluster" "this" {
  name           = "clientpipelines"
  node_image     = var.node_image
  wait_for_ready = true
}

provider "helm" {
  kubernetes {
    host                   = kind_cluster.this.endpoint
    cluster_ca_certificate = kind_cluster.this.cluster_ca_certificate
    client_certificate     = kind_cluster.this.client_certificate
    client_key             = kind_cluster.this.client_key
  }
}


module "bootstrap" {
  source   = "../../modules/argocd-bootstrap"
  repo_url = var.repo_url
}

output "kubeconfig_path" {
  description = "Kubeconfig of the kind cluster."
  value       = kind_cluster.this.kubeconfig_path
}
