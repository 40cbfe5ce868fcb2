-- One step of a gate restore, fenced by the restorer's lease: a restorer
-- that lost its lease (it stalled, another took over) writes nothing.
-- KEYS: lease, then per step:
--   begin:  -                      take or renew the lease
--   clear:  meta, fans, notes, pending, held, held-due
--   rows:   fans, notes            ARGV[5..]: fan, record, hasNote, note (x n)
--   meta:   meta                   ARGV[5..]: field, value (x n)
--   finish: state, lostAt          (stamps the state with ARGV[1])
-- ARGV: server run_id, token, leaseMs, step, ...
local holder = redis.call('GET', KEYS[1])
if ARGV[4] == 'begin' then
  if holder and holder ~= ARGV[2] then return 0 end
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
if holder ~= ARGV[2] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ARGV[4] == 'clear' then
  redis.call('UNLINK', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
elseif ARGV[4] == 'rows' then
  for i = 5, #ARGV, 4 do
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
    if ARGV[i + 2] == '1' then redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 3]) end
  end
elseif ARGV[4] == 'meta' then
  for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
elseif ARGV[4] == 'finish' then
  redis.call('SET', KEYS[2], ARGV[1])
  redis.call('DEL', KEYS[3], KEYS[1])
end
return 1
