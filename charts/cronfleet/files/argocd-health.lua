-- Argo CD health check for cronfleet.io/Schedule.
--
-- Install it as `resource.customizations.health.cronfleet.io_Schedule` in
-- argocd-cm (see the README, "GitOps health").
--
-- Argo CD runs custom health checks without Lua's standard libraries (no
-- `string`, no `math`), so this script uses only base functions and `..`.
--
--   status not written yet, or written for an older generation   Progressing
--   Reconciling=True                                              Progressing
--   phase Invalid, phase Failed, Stalled=True                     Degraded
--   RunBlocked=True (a run cannot start: missing Secret,
--     unpullable image, pods refused)                             Degraded
--   phase Paused                                                  Suspended
--   phase Active or Completed                                     Healthy
--
-- Failed is Degraded with retry.onExhausted Continue too: the cadence goes
-- on, but every attempt of the last run failed and someone should look.
-- RunBlocked is Degraded for the reason Argo CD's own Pod check calls
-- CreateContainerConfigError and ErrImagePull Degraded: waiting will not fix it.

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function first_text(...)
  for i = 1, select("#", ...) do
    local text = select(i, ...)
    if text ~= nil and text ~= "" then
      return text
    end
  end
  return ""
end

local function result(status, message)
  return { status = status, message = message }
end

local function check(obj)
  if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
    return result("Progressing", "Schedule is being deleted")
  end
  local status = obj.status
  if status == nil or status.phase == nil then
    return result("Progressing", "Waiting for the operator to report the Schedule's status")
  end

  -- A status written for an older spec says nothing about the current one.
  local generation = obj.metadata.generation
  local observed = status.observedGeneration
  if generation ~= nil then
    local waiting = "Waiting for the operator to observe generation " .. generation
    if observed == nil then
      return result("Progressing", waiting)
    end
    if observed < generation then
      return result("Progressing", waiting .. " (status is for generation " .. observed .. ")")
    end
    local ready = condition(status, "Ready")
    if ready ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
      return result("Progressing", waiting .. " (Ready is for generation " .. ready.observedGeneration .. ")")
    end
  end

  local ready = condition(status, "Ready") or {}
  local reconciling = condition(status, "Reconciling")
  if reconciling ~= nil and reconciling.status == "True" then
    return result("Progressing", first_text(reconciling.message, reconciling.reason, "Reconciling"))
  end

  local phase = status.phase
  if phase == "Invalid" then
    return result("Degraded", first_text(status.message, ready.message, "The Schedule's spec is invalid"))
  end
  if phase == "Failed" then
    return result("Degraded", first_text(status.message, ready.message, "Retries are exhausted"))
  end
  local stalled = condition(status, "Stalled")
  if stalled ~= nil and stalled.status == "True" then
    return result("Degraded", first_text(stalled.message, status.message, stalled.reason))
  end
  local blocked = condition(status, "RunBlocked")
  if blocked ~= nil and blocked.status == "True" then
    return result("Degraded", first_text(blocked.message, blocked.reason, "A run cannot start"))
  end

  if phase == "Paused" then
    return result("Suspended", first_text(status.message, "Schedule is paused (spec.suspend)"))
  end
  if phase == "Completed" then
    return result("Healthy", first_text(status.message, "Schedule has completed its runs"))
  end
  if phase == "Active" then
    if status.nextRunTime ~= nil and status.nextRunTime ~= "" then
      return result("Healthy", "Next run at " .. status.nextRunTime)
    end
    return result("Healthy", first_text(status.message, ready.message, "Schedule is active"))
  end

  -- A phase this script does not know yet: trust the Ready condition.
  if ready.status == "True" then
    return result("Healthy", first_text(ready.message, status.message, phase))
  end
  if ready.status == "False" then
    return result("Degraded", first_text(ready.message, status.message, phase))
  end
  return result("Progressing", first_text(status.message, "Phase " .. phase))
end

return check(obj)
