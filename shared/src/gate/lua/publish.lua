-- Publish an event definition without resetting its counters: a capacity
-- change moves `remaining` by the difference, and capacity may not drop below
-- what is already taken.
-- KEYS: state, meta
-- ARGV: title, opensAt, closesAt, opensAtMs, closesAtMs, capacity
if redis.call('EXISTS', KEYS[1]) == 0 then return {'state_lost'} end
local taken = tonumber(redis.call('HGET', KEYS[2], 'taken') or '0')
if tonumber(ARGV[6]) < taken then return {'below', tostring(taken)} end
redis.call('HSET', KEYS[2], 'title', ARGV[1], 'opensAt', ARGV[2], 'closesAt', ARGV[3],
  'opensAtMs', ARGV[4], 'closesAtMs', ARGV[5], 'capacity', ARGV[6])
redis.call('HSETNX', KEYS[2], 'taken', 0)
redis.call('HSETNX', KEYS[2], 'seq', 0)
return {'ok', tostring(taken)}
