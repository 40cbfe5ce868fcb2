-- Admit one fan to one event, atomically: is the gate state the one built on
-- this server, is the fan within its rate, does the event exist, has this fan
-- entered, is it open, is capacity left, may the line let one more fan in
-- now, next position.
-- KEYS: state, meta, fans, notes, pending, rate (per fan)
-- ARGV: server run_id, fanId, nowMs, token, note, hasNote ('1' or '0'),
--       rateLimit (requests per window, 0 = off), rateWindowMs,
--       line ('' the caller does not follow a line, 'admit' the fan's turn
--       came, 'existing' its turn passed: only an entry it already has)
-- Records: see the gate's module doc.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'state_lost'} end
local limit = tonumber(ARGV[7])
if limit > 0 then
  -- A fixed window per fan: the first request of a window starts its clock.
  local n = redis.call('INCR', KEYS[6])
  if n == 1 then redis.call('PEXPIRE', KEYS[6], ARGV[8]) end
  if n > limit then return {'rate_limited', tostring(redis.call('PTTL', KEYS[6]))} end
end
local m = redis.call('HMGET', KEYS[2], 'opensAtMs', 'closesAtMs', 'capacity', 'taken',
  'lineRate', 'lineTokens', 'lineTokensAt')
if not m[3] then return {'not_found'} end
-- An event with a line admits only fans whose turn came: a caller that does
-- not know of the line is sent to it.
if m[5] and ARGV[9] == '' then return {'lined'} end
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
if m[5] and ARGV[9] == 'existing' then return {'turn_missed'} end
local now = tonumber(ARGV[3])
if now < tonumber(m[1]) then return {'not_open'} end
if now >= tonumber(m[2]) then return {'closed'} end
if tonumber(m[4] or '0') >= tonumber(m[3]) then return {'sold_out'} end
if m[5] then
  -- The line's pace: a token bucket of the event's rate, holding a tenth of
  -- a second's worth, so no window of one second admits more than 1.1 x
  -- the rate however many fans come back at once.
  local rate = tonumber(m[5])
  local burst = math.max(1, math.ceil(rate / 10))
  local tokens = tonumber(m[6] or burst)
  local since = math.max(0, now - tonumber(m[7] or ARGV[3]))
  tokens = math.min(burst, tokens + since * rate / 1000)
  if tokens < 1 then
    redis.call('HSET', KEYS[2], 'lineTokens', tostring(tokens), 'lineTokensAt', ARGV[3])
    return {'paced', tostring(math.ceil((1 - tokens) * 1000 / rate))}
  end
  redis.call('HSET', KEYS[2], 'lineTokens', tostring(tokens - 1), 'lineTokensAt', ARGV[3])
end
redis.call('HINCRBY', KEYS[2], 'taken', 1)
local pos = tostring(redis.call('HINCRBY', KEYS[2], 'seq', 1))
redis.call('HSET', KEYS[3], ARGV[2], pos .. ':' .. ARGV[3] .. ':' .. ARGV[4])
if ARGV[6] == '1' then redis.call('HSET', KEYS[4], ARGV[2], ARGV[5]) end
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[2])
return {'reserved', pos, ARGV[3], ARGV[6], ARGV[5]}
