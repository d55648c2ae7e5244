-- POST /save-transaction/<route>, cycling through ROUTES distinct routes (AAA0000 ... ).
local routes = tonumber(os.getenv("ROUTES") or "100000")
local counter = 0
local key = os.getenv("API_KEY")
if key and key ~= "" then
  wrk.headers["X-API-Key"] = key
end

local function letters(n)
  local a = n % 26
  local b = math.floor(n / 26) % 26
  local c = math.floor(n / 676) % 26
  return string.char(65 + c, 65 + b, 65 + a)
end

function setup(thread)
  thread:set("offset", counter)
  counter = counter + 7919
end

request = function()
  offset = (offset + 1) % routes
  local path = string.format("/save-transaction/%s%04d", letters(math.floor(offset / 10000)), offset % 10000)
  return wrk.format("POST", path, wrk.headers)
end
