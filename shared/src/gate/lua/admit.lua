-- Admit one fan to one event, atomically: is the fan within its rate, is the
-- state there, does the event exist, has this fan entered, is it open, is
-- capacity left, next position.
-- KEYS: state, meta, fans, notes, pending, rate (per fan)
-- ARGV: fanId, nowMs, token, note, hasNote ('1' or '0'), rateLimit (requests
--       per window, 0 = off), rateWindowMs
-- A fans record is "position:acceptedAtMs" once SQS confirmed the entry and
-- "position:acceptedAtMs:token" while the send is pending.
local limit = tonumber(ARGV[6] or '0')
if limit > 0 then
  -- A fixed window per fan: the first request of a window starts its clock.
  local n = redis.call('INCR', KEYS[6])
  if n == 1 then redis.call('PEXPIRE', KEYS[6], ARGV[7]) end
  if n > limit then return {'rate_limited', tostring(redis.call('PTTL', KEYS[6]))} end
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {'state_lost'} end
local m = redis.call('HMGET', KEYS[2], 'opensAtMs', 'closesAtMs', 'capacity', 'taken')
if not m[3] then return {'not_found'} end
local rec = redis.call('HGET', KEYS[3], ARGV[1])
if rec then
  local pos, at, tok = string.match(rec, '^(%d+):(%d+):?(.*)$')
  local note = redis.call('HGET', KEYS[4], ARGV[1])
  local hasNote = '0'
  if note then hasNote = '1' else note = '' end
  if tok == '' then return {'existing', pos, at, hasNote, note} end
  -- Pending: this request takes the send over, with the same position.
  if tok ~= ARGV[3] then
    redis.call('HSET', KEYS[3], ARGV[1], pos .. ':' .. at .. ':' .. ARGV[3])
    redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])
  end
  return {'reserved', pos, at, hasNote, note}
end
local now = tonumber(ARGV[2])
if now < tonumber(m[1]) then return {'not_open'} end
if now >= tonumber(m[2]) then return {'closed'} end
if tonumber(m[4] or '0') >= tonumber(m[3]) then return {'sold_out'} end
redis.call('HINCRBY', KEYS[2], 'taken', 1)
local pos = tostring(redis.call('HINCRBY', KEYS[2], 'seq', 1))
redis.call('HSET', KEYS[3], ARGV[1], pos .. ':' .. ARGV[2] .. ':' .. ARGV[3])
if ARGV[5] == '1' then redis.call('HSET', KEYS[4], ARGV[1], ARGV[4]) end
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])
return {'reserved', pos, ARGV[2], ARGV[5], ARGV[4]}
