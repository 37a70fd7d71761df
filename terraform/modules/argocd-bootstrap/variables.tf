variable "namespace" {
  description = "Namespace ArgoCD is installed into (the root Application lives there too)."
  type        = string
  default     = "argocd"
}

variable "argocd_chart_version" {
  description = "Version of the argo-cd Helm chart (ArgoCD 3.x)."
  type        = string
  default     = "9.1.4"
}

variable "repo_url" {
  description = "Git URL of this repository, which the root Application and the ApplicationSet sync."
  type        = string
}

variable "target_revision" {
  description = "Branch, tag or commit of the repository to sync."
  type        = string
  default     = "main"
}

variable "argocd_values" {
  description = "Extra values for the argo-cd chart, merged over the module's own (YAML strings)."
  type        = list(string)
  default     = []
}
