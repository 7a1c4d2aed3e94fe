-- The benchmark's "lua" variant: the same job as sticky-split in the leanest
-- correct Envoy Lua filter (anchored cookie match, 80:20 pick for new users,
-- the routing header replaced, dynamic metadata for the Set-Cookie). The Lua
-- filter clears the route cache itself when it changes request headers.
local function pinned(cookie)
  return cookie:match("^nginx%-app%-subset=(pool[12])%f[;%z]")
      or cookie:match("; ?nginx%-app%-subset=(pool[12])%f[;%z]")
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local pool = pinned(headers:get("cookie") or "")
  if pool == nil then
    pool = math.random(100) <= 80 and "pool1" or "pool2"
    handle:streamInfo():dynamicMetadata():set("sticky", "new", pool)
  end
  headers:replace("x-sticky-split-pool", pool)
end

function envoy_on_response(handle)
  local meta = handle:streamInfo():dynamicMetadata():get("sticky")
  if meta ~= nil then
    handle:headers():add("set-cookie",
      "nginx-app-subset=" .. meta.new .. "; Max-Age=2592000; Path=/; HttpOnly; SameSite=Lax")
  end
end
