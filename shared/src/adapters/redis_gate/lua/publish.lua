-- Publish an event definition without resetting its counters: capacity may
-- not drop below what is already taken. A line's rate and pre-queue start
-- are part of the definition; its seed is written when given.
-- KEYS: state, meta
-- ARGV: server run_id, title, opensAt, closesAt, opensAtMs, closesAtMs, capacity,
--       lineRate ('' = no line), linePrequeueMs, lineSeed,
--       seedWrite ('set', 'missing' = only if none is held, '' = keep)
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'state_lost'} end
-- A retired id (retire.lua) is never published again.
if redis.call('HGET', KEYS[2], 'retired') == '1' then return {'retired'} end
local taken = tonumber(redis.call('HGET', KEYS[2], 'taken') or '0')
if tonumber(ARGV[7]) < taken then return {'below', tostring(taken)} end
redis.call('HSET', KEYS[2], 'title', ARGV[2], 'opensAt', ARGV[3], 'closesAt', ARGV[4],
  'opensAtMs', ARGV[5], 'closesAtMs', ARGV[6], 'capacity', ARGV[7], 'archived', '0')
if ARGV[8] == '' then
  redis.call('HDEL', KEYS[2], 'lineRate', 'linePrequeueMs')
else
  redis.call('HSET', KEYS[2], 'lineRate', ARGV[8], 'linePrequeueMs', ARGV[9])
end
if ARGV[11] == 'set' then
  redis.call('HSET', KEYS[2], 'lineSeed', ARGV[10])
elseif ARGV[11] == 'missing' then
  redis.call('HSETNX', KEYS[2], 'lineSeed', ARGV[10])
end
redis.call('HSETNX', KEYS[2], 'taken', 0)
redis.call('HSETNX', KEYS[2], 'seq', 0)
return {'ok', tostring(taken)}
