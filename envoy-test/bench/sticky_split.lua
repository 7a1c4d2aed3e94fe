-- The benchmark's "lua" variant: the same job as sticky-split in an Envoy Lua
-- filter (cookie -> pool, weighted pick 80:20 for new users, routing header,
-- Set-Cookie for new users).
local COOKIE = "nginx-app-subset"
local POOLS = { pool1 = true, pool2 = true }

function envoy_on_request(request_handle)
  local headers = request_handle:headers()
  headers:remove("x-sticky-split-cluster")
  local pool = nil
  local cookie = headers:get("cookie")
  if cookie ~= nil then
    for value in string.gmatch(cookie, "[;%s]*" .. COOKIE:gsub("%-", "%%-") .. "=([^;]*)") do
      if POOLS[value] then
        pool = value
        break
      end
    end
  end
  if pool == nil then
    if math.random(100) <= 80 then pool = "pool1" else pool = "pool2" end
    request_handle:streamInfo():dynamicMetadata():set("sticky", "new", pool)
  end
  headers:replace("x-sticky-split-cluster", pool)
  request_handle:clearRouteCache()
end

function envoy_on_response(response_handle)
  local meta = response_handle:streamInfo():dynamicMetadata():get("sticky")
  if meta ~= nil and meta["new"] ~= nil then
    response_handle:headers():add("set-cookie",
      COOKIE .. "=" .. meta["new"] .. "; Max-Age=2592000; Path=/; HttpOnly; SameSite=Lax")
  end
end
