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

# The root Application (app-of-apps): everything else comes from git. A Helm
# release of argocd/bootstrap after Argo CD's own, as the ecosystem does (argocd-apps):
# unlike a kubernetes_manifest it needs no Application CRD when it is planned, so one
# apply installs both on a fresh cluster.
resource "helm_release" "root" {
  depends_on = [helm_release.argocd]

  name      = "clientpipelines-root"
  namespace = var.namespace
  chart     = "${path.module}/../../../argocd/bootstrap"

  values = [yamlencode({
    repoURL  = var.repo_url
    revision = var.target_revision
  })]
}
