-- wrk script: spreads GETs over the pages of a list (path and page count from the environment).
local path = os.getenv("BENCH_PATH") or "/api/v4/projects/1/deploy_keys"
local pages = tonumber(os.getenv("BENCH_PAGES") or "50")
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", path .. "?page=" .. (n % pages + 1))
end
