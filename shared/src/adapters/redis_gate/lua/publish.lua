-- Publish an event definition without resetting its counters: capacity may
-- not drop below what is already taken.
-- KEYS: state, meta
-- ARGV: server run_id, title, opensAt, closesAt, opensAtMs, closesAtMs, capacity
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'state_lost'} end
-- A retired id (retire.lua) is never published again.
if redis.call('HGET', KEYS[2], 'retired') == '1' then return {'retired'} end
local taken = tonumber(redis.call('HGET', KEYS[2], 'taken') or '0')
if tonumber(ARGV[7]) < taken then return {'below', tostring(taken)} end
redis.call('HSET', KEYS[2], 'title', ARGV[2], 'opensAt', ARGV[3], 'closesAt', ARGV[4],
  'opensAtMs', ARGV[5], 'closesAtMs', ARGV[6], 'capacity', ARGV[7], 'archived', '0')
redis.call('HSETNX', KEYS[2], 'taken', 0)
redis.call('HSETNX', KEYS[2], 'seq', 0)
return {'ok', tostring(taken)}
