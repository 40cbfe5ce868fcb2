-- Publish an event definition without resetting its counters: capacity may
-- not drop below what is already taken. A line's rate and pre-queue start
-- are part of the definition; its seed is written when given.
-- KEYS: state, meta
-- ARGV: run_id, title, opensAt, closesAt, opensAtMs, closesAtMs, capacity,
--       lineRate ('' = no line), linePrequeueMs, lineSeed,
--       seedWrite ('set', 'missing' = only if none is held, '' = keep)
-- Replies {'ok', taken}, {'below', taken}, {'retired'}, {'archived'} or
-- {'state_lost'}.
local state_key, meta_key = KEYS[1], KEYS[2]
local run_id, title, opens_at, closes_at, opens_ms, closes_ms, capacity =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local line_rate, prequeue_ms, seed, seed_write = ARGV[8], ARGV[9], ARGV[10], ARGV[11]

if not fence_holds(state_key, run_id) then return {'state_lost'} end
-- A retired id (retire.lua) is never published again.
local held = redis.call('HMGET', meta_key, 'retired', 'archived', 'taken')
if held[1] == '1' then return {'retired'} end
-- An archived event's fans are gone from the gate (archive.lua): reopened,
-- it would let them in twice.
if held[2] == '1' then return {'archived'} end
local taken = tonumber(held[3] or '0')
if tonumber(capacity) < taken then return {'below', int(taken)} end
redis.call('HSET', meta_key, 'title', title, 'opensAt', opens_at, 'closesAt', closes_at,
  'opensAtMs', opens_ms, 'closesAtMs', closes_ms, 'capacity', capacity)
if line_rate == '' then
  redis.call('HDEL', meta_key, 'lineRate', 'linePrequeueMs')
else
  redis.call('HSET', meta_key, 'lineRate', line_rate, 'linePrequeueMs', prequeue_ms)
end
if seed_write == 'set' then
  redis.call('HSET', meta_key, 'lineSeed', seed)
elseif seed_write == 'missing' then
  redis.call('HSETNX', meta_key, 'lineSeed', seed)
end
redis.call('HSETNX', meta_key, 'taken', 0)
redis.call('HSETNX', meta_key, 'seq', 0)
return {'ok', int(taken)}
