-- The ClientPipeline actions ArgoCD offers, and when each makes sense.
-- run-now and restart-connector only annotate the object; the operator acts on the
-- annotation and removes it (operator/clientpipelines/operator/requests.py).
local actions = {}
local suspended = obj.spec ~= nil and obj.spec.transform ~= nil
    and obj.spec.transform.suspend == true
local cdc = obj.spec == nil or obj.spec.ingestion == nil or obj.spec.ingestion.mode == nil
    or obj.spec.ingestion.mode == "cdc"
local annotations = (obj.metadata ~= nil and obj.metadata.annotations) or {}

actions["run-now"] = {
  ["iconClass"] = "fa fa-fw fa-play",
  ["displayName"] = "Run the pipeline now",
  ["disabled"] = annotations["pipelines.promptly.io/run-now"] ~= nil,
}
actions["suspend"] = {
  ["iconClass"] = "fa fa-fw fa-pause",
  ["displayName"] = "Suspend runs and pause CDC",
  ["disabled"] = suspended,
}
actions["resume"] = {
  ["iconClass"] = "fa fa-fw fa-play-circle",
  ["displayName"] = "Resume runs and CDC",
  ["disabled"] = not suspended,
}
actions["restart-connector"] = {
  ["iconClass"] = "fa fa-fw fa-redo",
  ["displayName"] = "Restart the CDC connector",
  ["disabled"] = not cdc or annotations["pipelines.promptly.io/restart-connector"] ~= nil,
}
return actions
