-- Ask the operator for a run now: it creates a Job from the pipeline's CronJob, as
-- `kubectl create job --from` would, and removes this annotation. The value names
-- the request, so a repeated sync of the same request runs once.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["pipelines.promptly.io/run-now"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
