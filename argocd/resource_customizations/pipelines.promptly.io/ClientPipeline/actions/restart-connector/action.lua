-- Ask the operator to restart the CDC connector and all its tasks (after fixing what
-- made it fail, e.g. once it gave up after its automatic restarts). The operator
-- restarts it, resets its restart count, and removes this annotation.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["pipelines.promptly.io/restart-connector"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
