-- GET the URL's path; with API_KEY set, as a caller with that key.
wrk.method = "GET"
local key = os.getenv("API_KEY")
if key and key ~= "" then
  wrk.headers["X-API-Key"] = key
end
