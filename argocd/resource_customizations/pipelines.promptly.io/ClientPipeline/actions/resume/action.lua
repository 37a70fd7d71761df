-- Resume a suspended pipeline: runs are scheduled again and the connector resumes
-- from its slot's position (nothing is lost while suspended).
if obj.spec.transform == nil then
  obj.spec.transform = {}
end
obj.spec.transform.suspend = false
return obj
