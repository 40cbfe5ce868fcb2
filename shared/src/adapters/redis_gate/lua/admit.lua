-- Admit one fan to one event, atomically: is the gate state the one built on
-- this server, is the fan within its rate, does the event exist, has this fan
-- entered, is it open, is capacity left, next position.
-- KEYS: state, meta, fans, notes, pending, rate (per fan)
-- ARGV: server run_id, fanId, nowMs, token, note, hasNote ('1' or '0'),
--       rateLimit (requests per window, 0 = off), rateWindowMs
-- Records: see the gate's module doc.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'state_lost'} end
local limit = tonumber(ARGV[7])
if limit > 0 then
  -- A fixed window per fan: the first request of a window starts its clock.
  local n = redis.call('INCR', KEYS[6])
  if n == 1 then redis.call('PEXPIRE', KEYS[6], ARGV[8]) end
  if n > limit then return {'rate_limited', tostring(redis.call('PTTL', KEYS[6]))} end
end
local m = redis.call('HMGET', KEYS[2], 'opensAtMs', 'closesAtMs', 'capacity', 'taken')
if not m[3] then return {'not_found'} end
local rec = redis.call('HGET', KEYS[3], ARGV[2])
if rec then
  local pos, at, tok = string.match(rec, '^(%d+):(%d+):?([^:]*)')
  local note = redis.call('HGET', KEYS[4], ARGV[2])
  local hasNote = '0'
  if note then hasNote = '1' else note = '' end
  if tok == '' then return {'existing', pos, at, hasNote, note} end
  -- Pending: this request takes the send over, with the same position. The
  -- earlier send may still land, so the record becomes shared: no request
  -- may release it any more, only the sweep (which looks in PostgreSQL and
  -- the DLQ first).
  if tok ~= ARGV[4] then
    redis.call('HSET', KEYS[3], ARGV[2], pos .. ':' .. at .. ':' .. ARGV[4] .. ':shared')
    redis.call('ZADD', KEYS[5], ARGV[3], ARGV[2])
  end
  return {'reserved', pos, at, hasNote, note}
end
local now = tonumber(ARGV[3])
if now < tonumber(m[1]) then return {'not_open'} end
if now >= tonumber(m[2]) then return {'closed'} end
if tonumber(m[4] or '0') >= tonumber(m[3]) then return {'sold_out'} end
redis.call('HINCRBY', KEYS[2], 'taken', 1)
local pos = tostring(redis.call('HINCRBY', KEYS[2], 'seq', 1))
redis.call('HSET', KEYS[3], ARGV[2], pos .. ':' .. ARGV[3] .. ':' .. ARGV[4])
if ARGV[6] == '1' then redis.call('HSET', KEYS[4], ARGV[2], ARGV[5]) end
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[2])
return {'reserved', pos, ARGV[3], ARGV[6], ARGV[5]}
