-- Publish an event definition without resetting its counters: capacity may
-- not drop below what is already taken. A line's rate and pre-queue start
-- are part of the definition; its seed is written when given.
-- KEYS: meta
-- ARGV: run_id, title, opensAt, closesAt, opensAtMs, closesAtMs, capacity,
--       lineRate ('' = no line), linePrequeueMs, lineSeed,
--       seedWrite ('set', 'missing' = only if none is held, '' = keep),
--       fresh ('1': the directory listed the id just now, dir.lua)
-- An event is built on this server only when it is new: an event without
-- keys that the directory knew before was lost, and only a restore may
-- rebuild it (its counters come from PostgreSQL).
-- Replies {'ok', taken}, {'below', taken}, {'retired'}, {'archived'} or
-- {'state_lost'}.
local meta_key = KEYS[1]
local run_id, title, opens_at, closes_at, opens_ms, closes_ms, capacity =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local line_rate, prequeue_ms, seed, seed_write, fresh = ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12]

local refused = refusal(meta_key, run_id)
if refused == 'absent' and fresh == '1' then
  redis.call('HSET', meta_key, 'fence', run_id)
elseif refused then
  return {'state_lost'}
end
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
