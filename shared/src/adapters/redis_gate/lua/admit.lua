-- Admit one fan to one event, atomically: is the gate state the one built on
-- this server, is the fan within its rate, does the event exist, has this fan
-- entered, is it open, is capacity left, may the line let one more fan in
-- now, next position.
-- KEYS: state, meta, fans, notes, pending, rate (per fan), line (counts),
--       held (the fans the line's pace holds back, by place), held-due (the
--       same, by when each is due back)
-- ARGV: server run_id, fanId, nowMs, token, note, hasNote ('1' or '0'),
--       rateLimit (requests per window, 0 = off), rateWindowMs,
--       line ('' the caller does not follow a line, 'admit' the fan's turn
--       came, 'existing' its turn passed: only an entry it already has),
--       the place's order key (for 'admit'), then for a caller that follows
--       a line the environment's refresh (see line.lua: fromBucket, -1 for
--       none; prequeued; bucket, issued x n)
-- Records: see the gate's module doc.
--
-- A caller following a line gets {admission, line}: the admission as
-- below, and the line's state after it ({taken, capacity, counts, from,
-- buckets}, counts as line.lua returns them when a refresh asked for them).
-- The line's bookkeeping rides on the admissions it paces: no call of its
-- own for an environment whose fans' turns keep coming.
-- A caller of an older protocol (eight arguments) does not follow a line.
local line_mode = ARGV[9] or ''

local function line_tail(taken, capacity)
  local bitfield = {'BITFIELD', KEYS[7]}
  if tonumber(ARGV[12]) > 0 then
    bitfield[#bitfield + 1] = 'INCRBY'
    bitfield[#bitfield + 1] = 'u32'
    bitfield[#bitfield + 1] = '#0'
    bitfield[#bitfield + 1] = ARGV[12]
  end
  for i = 13, #ARGV, 2 do
    bitfield[#bitfield + 1] = 'INCRBY'
    bitfield[#bitfield + 1] = 'u32'
    bitfield[#bitfield + 1] = '#' .. (tonumber(ARGV[i]) + 1)
    bitfield[#bitfield + 1] = ARGV[i + 1]
  end
  if #bitfield > 2 then redis.call(unpack(bitfield)) end
  local from = tonumber(ARGV[11])
  if from < 0 then return {tostring(taken), capacity} end
  local buckets = math.max(0, redis.call('STRLEN', KEYS[7]) / 4 - 1)
  local upto = math.min(buckets - 1, from + 2999)
  local counts = ''
  if upto >= from then counts = redis.call('GETRANGE', KEYS[7], (from + 1) * 4, (upto + 1) * 4 + 3) end
  return {tostring(taken), capacity, redis.call('GETRANGE', KEYS[7], 0, 3), tostring(from), tostring(buckets), counts}
end

-- What admit() read of the event: taken and capacity, for the line's tail.
local seen = {}

local function admit()
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'state_lost'} end
-- A fixed window per fan: the first request of a window starts its clock.
-- A fan whose turn came is counted only once the line's pace lets it
-- through: coming back when a paced answer said is following the line.
local function over_limit()
  local limit = tonumber(ARGV[7])
  if limit <= 0 then return nil end
  local n = redis.call('INCR', KEYS[6])
  if n == 1 then redis.call('PEXPIRE', KEYS[6], ARGV[8]) end
  if n > limit then return {'rate_limited', tostring(redis.call('PTTL', KEYS[6]))} end
  return nil
end
if line_mode ~= 'admit' then
  local limited = over_limit()
  if limited then return limited end
end
local m = redis.call('HMGET', KEYS[2], 'opensAtMs', 'closesAtMs', 'capacity', 'taken',
  'lineRate', 'lineTokens', 'lineTokensAt', 'linePrequeueIn', 'linePrequeueAt')
if not m[3] then return {'not_found'} end
seen = {m[4] or '0', m[3]}
-- An event with a line admits only fans whose turn came: a caller that does
-- not know of the line is sent to it.
if m[5] and line_mode == '' then return {'lined'} end
local rec = redis.call('HGET', KEYS[3], ARGV[2])
if rec then
  if line_mode == 'admit' then
    local limited = over_limit()
    if limited then return limited end
  end
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
if m[5] and line_mode == 'existing' then return {'turn_missed'} end
local now = tonumber(ARGV[3])
if now < tonumber(m[1]) then return {'not_open'} end
if now >= tonumber(m[2]) then return {'closed'} end
if tonumber(m[4] or '0') >= tonumber(m[3]) then return {'sold_out'} end
if m[5] then
  -- The line's pace: a token bucket holding a hundredth of a second's
  -- worth (at least one) and refilled at 1.1 x the event's rate less that,
  -- so no window of one second admits more than 1.1 x the rate (or the
  -- rate plus one, below ten a second) however many fans come back at
  -- once. The fronts walk at the rate itself: the headroom is what lets
  -- fans who came back late, or a front that ran ahead on counts not yet
  -- flushed, in again; a bucket exactly as fast as the fronts could never
  -- win back a token lost, and the fans held back would only pile up.
  local line_rate = tonumber(m[5])
  local burst = math.max(1, math.floor(line_rate / 100))
  local rate = math.max(line_rate, 1.1 * line_rate - burst)
  local tokens = tonumber(m[6] or burst)
  -- The bucket's clock never goes back: calls from environments whose
  -- clocks read a little differently arrive in any order.
  local last = tonumber(m[7] or ARGV[3])
  local clock = math.max(now, last)
  tokens = math.min(burst, tokens + (clock - last) * rate / 1000)
  -- Every fan the pace lets in passes through a queue (KEYS[8]), scored by
  -- its place: it takes a token only among the first half second's worth
  -- there, so a fan held back is not overtaken by one whose place is much
  -- later, whichever environment's front let each through first. The
  -- window must hold every fan on its way back (its network, API Gateway,
  -- Lambda): a token that finds none of the window's fans at the gate is
  -- lost, so a window of W fans admits at most W per round trip (with a
  -- twentieth of a second's worth, a 150 ms round trip admits a third of
  -- the rate). The order across more than half a second of arrivals is
  -- kept below.
  -- Each is told when its token is due, and leaves the queue if it is not
  -- back a second after that (HELD_GRACE_MS: longer than an answer takes
  -- through API Gateway and Lambda at the tail; should it come later, it
  -- queues again at its place). A fan that walked away holds up the fans
  -- behind it that may not pass it (below) for that second at most.
  local HELD_GRACE_MS = 1000
  local window = math.max(1, math.ceil(line_rate / 2))
  local gone = redis.call('ZRANGEBYSCORE', KEYS[9], '-inf', '(' .. now, 'LIMIT', 0, 50)
  for _, fan in ipairs(gone) do
    if fan ~= ARGV[2] then
      redis.call('ZREM', KEYS[8], fan)
      redis.call('ZREM', KEYS[9], fan)
    end
  end
  redis.call('ZADD', KEYS[8], ARGV[10], ARGV[2])
  local rank = redis.call('ZRANK', KEYS[8], ARGV[2])
  -- The order holds at the gate across environments' fronts and slow
  -- answers, beyond the window. A fan who arrived after the opening (order
  -- key >= 0; the pre-queue's are negative, and an arrival's holds its
  -- 100 ms bucket above 24 bits) takes no token
  -- - while a pre-queued fan is held in the queue;
  -- - while some pre-queued fans are not in yet, until the pre-queue's
  --   admissions have stalled for PREQUEUE_HOLD_MS (the fronts' gap is half
  --   a second; a pre-queued fan who came back later, after a slow answer or
  --   a 503, still goes first). The hold starts at the first arrival here if
  --   no pre-queued fan came in yet, and costs a line whose last pre-queued
  --   fans walked away that long, once;
  -- - while the queue's head arrived half a second (five buckets) or more
  --   before it.
  local PREQUEUE_HOLD_MS = 2000
  local ARRIVAL_WINDOW = 5 * 16777216
  local out_of_order = false
  local key = tonumber(ARGV[10])
  if key >= 0 then
    local head = tonumber(redis.call('ZRANGE', KEYS[8], 0, 0, 'WITHSCORES')[2])
    if head < 0 or key - head >= ARRIVAL_WINDOW then
      out_of_order = true
    else
      local joined = tonumber(redis.call('BITFIELD', KEYS[7], 'GET', 'u32', '#0')[1])
      if tonumber(m[8] or '0') < joined then
        local since = tonumber(m[9] or '')
        if not since then
          since = now
          redis.call('HSET', KEYS[2], 'linePrequeueAt', tostring(now))
        end
        out_of_order = now - since < PREQUEUE_HOLD_MS
      end
    end
  end
  if tokens < 1 or rank >= window or out_of_order then
    redis.call('HSET', KEYS[2], 'lineTokens', tostring(tokens), 'lineTokensAt', tostring(clock))
    local due = (rank + 1 - tokens) * 1000 / rate
    -- Held for the order: back in a tenth of a second, not at once.
    if out_of_order then due = math.max(due, 100) end
    due = math.max(5, math.ceil(due))
    redis.call('ZADD', KEYS[9], now + due + HELD_GRACE_MS, ARGV[2])
    return {'paced', tostring(due)}
  end
  redis.call('ZREM', KEYS[8], ARGV[2])
  redis.call('ZREM', KEYS[9], ARGV[2])
  local limited = over_limit()
  if limited then return limited end
  redis.call('HSET', KEYS[2], 'lineTokens', tostring(tokens - 1), 'lineTokensAt', tostring(clock))
  if key < 0 then
    redis.call('HINCRBY', KEYS[2], 'linePrequeueIn', 1)
    redis.call('HSET', KEYS[2], 'linePrequeueAt', tostring(now))
  end
end
seen[1] = tostring(redis.call('HINCRBY', KEYS[2], 'taken', 1))
local pos = tostring(redis.call('HINCRBY', KEYS[2], 'seq', 1))
redis.call('HSET', KEYS[3], ARGV[2], pos .. ':' .. ARGV[3] .. ':' .. ARGV[4])
if ARGV[6] == '1' then redis.call('HSET', KEYS[4], ARGV[2], ARGV[5]) end
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[2])
return {'reserved', pos, ARGV[3], ARGV[6], ARGV[5]}
end

local reply = admit()
if line_mode == '' or seen[2] == nil then return reply end
return {reply, line_tail(seen[1], seen[2])}