-- Suspend the pipeline: the CronJob stops scheduling runs and the connector pauses
-- (its replication slot keeps its place, and holds WAL meanwhile: see
-- ReplicationSlotHealthy). Under auto-sync with self-heal, git wins: suspend in git.
if obj.spec.transform == nil then
  obj.spec.transform = {}
end
obj.spec.transform.suspend = true
return obj
