locals {
  customizations = "${path.module}/../../../argocd/resource_customizations/pipelines.promptly.io/ClientPipeline"
  health_lua     = file("${local.customizations}/health.lua")
  # ArgoCD's resource actions (run now, suspend, resume, restart the connector) in
  # argocd-cm's format: the discovery script and one definition per action folder.
  actions = yamlencode({
    "discovery.lua" = file("${local.customizations}/actions/discovery.lua")
    definitions = [
      for name in sort([for f in fileset("${local.customizations}/actions", "*/action.lua") : dirname(f)]) : {
        name         = name
        "action.lua" = file("${local.customizations}/actions/${name}/action.lua")
      }
    ]
  })
}

# ArgoCD itself, with the ClientPipeline health check registered, so its UI shows
# Healthy / Progressing / Degraded from the operator's conditions, and its actions.
resource "helm_release" "argocd" {
  name             = "argocd"
  namespace        = var.namespace
  create_namespace = true
  repository       = "https://argoproj.github.io/argo-helm"
  chart            = "argo-cd"
  version          = var.argocd_chart_version
  wait             = true

  values = concat([
    yamlencode({
      configs = {
        cm = {
          "resource.customizations.health.pipelines.promptly.io_ClientPipeline"  = local.health_lua
          "resource.customizations.actions.pipelines.promptly.io_ClientPipeline" = local.actions
        }
      }
    })
  ], var.argocd_values)
}

# The root Application (app-of-apps): everything else comes from git.
resource "kubernetes_manifest" "root" {
  depends_on = [helm_release.argocd]

  manifest = {
    apiVersion = "argoproj.io/v1alpha1"
    kind       = "Application"
    metadata = {
      name       = "clientpipelines-root"
      namespace  = var.namespace
      finalizers = ["resources-finalizer.argocd.argoproj.io"]
    }
    spec = {
      project = "default"
      source = {
        repoURL        = var.repo_url
        targetRevision = var.target_revision
        path           = "argocd/apps"
      }
      destination = {
        server    = "https://kubernetes.default.svc"
        namespace = var.namespace
      }
      syncPolicy = {
        automated = { prune = true, selfHeal = true }
      }
    }
  }
}
