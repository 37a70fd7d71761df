output "argocd_namespace" {
  description = "Namespace ArgoCD runs in."
  value       = helm_release.argocd.namespace
}

output "root_application" {
  description = "Name of the root (app-of-apps) Application."
  value       = kubernetes_manifest.root.manifest.metadata.name
}
