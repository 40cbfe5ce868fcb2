-- One step of an event's restore, fenced by the restorer's lease: a restorer
-- that lost its lease (it stalled, another took over) writes nothing.
-- KEYS: the event's lease, then per step:
--   begin:  -                      take or renew the lease
--   clear:  every key of the event a restore rebuilds
--   rows:   fans, notes            ARGV[5..]: fan, record, hasNote, note (x n)
--   meta:   meta                   ARGV[5..]: field, value (x n)
--   finish: meta, lostAt           (stamps the event's fence with ARGV[1])
-- ARGV: server run_id, token, leaseMs, step, ...
-- Replies 1 when the step was written, 0 when the lease is another's.
local lease_key = KEYS[1]
local run_id, token, lease_ms, step = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local FIRST = 5

local holder = redis.call('GET', lease_key)
if step == 'begin' then
  if holder and holder ~= token then return 0 end
  redis.call('SET', lease_key, token, 'PX', lease_ms)
  return 1
end
if holder ~= token then return 0 end
redis.call('PEXPIRE', lease_key, lease_ms)
if step == 'clear' then
  redis.call('UNLINK', unpack(KEYS, 2))
elseif step == 'rows' then
  local fans_key, notes_key = KEYS[2], KEYS[3]
  for i = FIRST, #ARGV, 4 do
    redis.call('HSET', fans_key, ARGV[i], ARGV[i + 1])
    if ARGV[i + 2] == '1' then redis.call('HSET', notes_key, ARGV[i], ARGV[i + 3]) end
  end
elseif step == 'meta' then
  for i = FIRST, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
elseif step == 'finish' then
  local meta_key, lost_at_key = KEYS[2], KEYS[3]
  redis.call('HSET', meta_key, 'fence', run_id)
  redis.call('DEL', lost_at_key, lease_key)
end
return 1
