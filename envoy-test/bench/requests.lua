-- wrk request generator for scripts/bench. The mode (first script argument):
--   mix     new users, returning users and 4 KiB-cookie users in turn
--   short   returning users with a short Cookie header
--   big     returning users with a 4 KiB Cookie header
--   new     new users only (no Cookie header)
--   returning  returning users only, with a browser-like Cookie header
-- Optional second and third arguments: the affinity values of the returning
-- users of pool1 and pool2 (default: the plain pool names), e.g. stamped
-- values for a gateway with server-side timeouts.
local mode = "mix"
local reqs = {}

function init(args)
  mode = args[1] or "mix"
  local v1, v2 = args[2] or "pool1", args[3] or "pool2"
  local filler = {}
  for i = 1, 40 do filler[#filler + 1] = string.format("c%02d=%s", i, string.rep("v", 95)) end
  local big = table.concat(filler, "; ")            -- ~4 KiB of other cookies
  local new = wrk.format("GET", "/", {})
  local short1 = wrk.format("GET", "/", { ["Cookie"] = "_ga=GA1.2.345; nginx-app-subset=" .. v1 })
  local short2 = wrk.format("GET", "/", { ["Cookie"] = "_ga=GA1.2.345; nginx-app-subset=" .. v2 })
  local big1 = wrk.format("GET", "/", { ["Cookie"] = big .. "; nginx-app-subset=" .. v1 })
  local big2 = wrk.format("GET", "/", { ["Cookie"] = big .. "; nginx-app-subset=" .. v2 })
  local browser = "_ga=GA1.2.1234567890.1790000000; _gid=GA1.2.987654321.1790000000; theme=dark; "
  local tail = "; session=3f9a8c2e5b7d4a1f9c0e6b2d8a4f7c1e"
  local ret1 = wrk.format("GET", "/", { ["Cookie"] = browser .. "nginx-app-subset=" .. v1 .. tail })
  local ret2 = wrk.format("GET", "/", { ["Cookie"] = browser .. "nginx-app-subset=" .. v2 .. tail })
  if mode == "short" then reqs = { short1, short2 }
  elseif mode == "new" then reqs = { new }
  elseif mode == "returning" then reqs = { ret1, ret2 }
  elseif mode == "big" then reqs = { big1, big2 }
  else reqs = { new, short1, big2, new, short2, big1 } end
end

local i = 0
function request()
  i = i + 1
  return reqs[(i % #reqs) + 1]
end
