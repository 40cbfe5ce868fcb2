-- Is the gate state missing, or built on another server (a failover, a
-- restart from a snapshot)? Then since when: the first time anyone noticed
-- on this server, so the restore can wait until requests in flight then are
-- over. A mark another server left behind does not count.
-- KEYS: state, lostAt
-- ARGV: server run_id, nowMs
if redis.call('GET', KEYS[1]) == ARGV[1] then return false end
local seen = redis.call('GET', KEYS[2])
if seen then
  local server, ms = string.match(seen, '^([^:]*):(%d+)$')
  if server == ARGV[1] then return tonumber(ms) end
end
redis.call('SET', KEYS[2], ARGV[1] .. ':' .. ARGV[2])
return tonumber(ARGV[2])
