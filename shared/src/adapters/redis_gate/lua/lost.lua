-- Is an event's gate state missing, or built on another server (a failover,
-- a restart from a snapshot)? Then since when: the first time anyone noticed
-- on this server, so the restore can wait until requests in flight then are
-- over. A mark another server left behind does not count.
-- KEYS: meta, lostAt (the event's)
-- ARGV: run_id, nowMs
-- Replies false while the state holds, else the loss's time (ms).
local meta_key, lost_at_key = KEYS[1], KEYS[2]
local run_id, now = ARGV[1], ARGV[2]

if not refusal(meta_key, run_id) then return false end
local seen = redis.call('GET', lost_at_key)
if seen then
  local server, ms = string.match(seen, '^([^:]*):(%d+)$')
  if server == run_id then return tonumber(ms) end
end
redis.call('SET', lost_at_key, run_id .. ':' .. now)
return tonumber(now)
