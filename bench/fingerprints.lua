-- wrk script: asks the SSH door's internal route about the sample keys in turn (BENCH_SAMPLE, lines
-- `SHA256:… type base64` as examples/seed.rs writes them), each fingerprint percent-encoded.
local paths = {}
for line in io.lines(os.getenv("BENCH_SAMPLE")) do
  local fp = line:match("^(%S+)")
  if fp then
    local q = fp:gsub("[^%w]", function(c) return string.format("%%%02X", string.byte(c)) end)
    paths[#paths + 1] = "/internal/ssh/authorized-key?fingerprint=" .. q
  end
end
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n * 7919) % #paths + 1])
end
