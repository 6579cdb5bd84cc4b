-- bench/conn-fairness.sh: one connection per wrk thread (-tN -cN); prints how many requests each connection had answered and their spread
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) count = 0 end
function response(status, headers, body) count = count + 1 end
function done(summary, latency, requests)
  local c = {}
  for _, t in ipairs(threads) do table.insert(c, t:get("count")) end
  table.sort(c)
  local n, sum, sq = #c, 0, 0
  for _, v in ipairs(c) do sum = sum + v end
  local mean = sum / n
  for _, v in ipairs(c) do sq = sq + (v - mean) ^ 2 end
  io.write(string.format("connections %d mean %.0f cv %.3f min %d p10 %d p50 %d p90 %d max %d\n",
    n, mean, math.sqrt(sq / n) / mean, c[1], c[math.floor(n * 0.1) + 1], c[math.floor(n * 0.5) + 1], c[math.floor(n * 0.9) + 1], c[n]))
end
