-- ArgoCD health of a ClientPipeline, from the conditions the operator reports.
-- Healthy: Ready=True for the current generation. Progressing: the operator has
-- not caught up yet, or a part is still starting. Degraded: any other False, or
-- runs failing in a row (LastRunSucceeded=False, reason RunsFailing: the operator's
-- FAILED_RUNS_DEGRADED, chart value failedRunsDegraded, sets how many), or the
-- replication slot holding more WAL on the client's database than allowed
-- (ReplicationSlotHealthy=False: the one failure that hurts the client's server).
local hs = {}
local starting = {ConnectorStarting = true, ConnectorRestarting = true}

if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report conditions"
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= nil
    and obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. obj.metadata.generation
  return hs
end

local ready = nil
local runs = nil
local slot = nil
local failing = {}
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then
    ready = c
  elseif c.type == "LastRunSucceeded" then
    runs = c
  elseif c.type == "ReplicationSlotHealthy" then
    slot = c
  elseif c.status == "False" then
    table.insert(failing, c)
  end
end
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end
if slot ~= nil and slot.status == "False" then
  hs.status = "Degraded"
  hs.message = slot.message or slot.reason
  return hs
end
if ready.status == "True" and runs ~= nil and runs.status == "False"
    and runs.reason == "RunsFailing" then
  hs.status = "Degraded"
  hs.message = runs.message or runs.reason
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  return hs
end
local only_starting = #failing > 0
for _, c in ipairs(failing) do
  if not starting[c.reason] then only_starting = false end
end
if only_starting or starting[ready.reason] then
  hs.status = "Progressing"
else
  hs.status = "Degraded"
end
hs.message = ready.message or ready.reason
return hs
