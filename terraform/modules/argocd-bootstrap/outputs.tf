output "argocd_namespace" {
  description = "Namespace ArgoCD runs in."
  value       = helm_release.argocd.namespace
}

output "root_application" {
  description = "Name of the root (app-of-apps) Application."
  # The root chart's one object (argocd/bootstrap/templates/root.yaml).
  value = "clientpipelines-root"
}
