-- Admit one fan to one event, atomically: the gate's one decision.
--
-- KEYS: meta, fans, notes, pending, door, grants, joined
-- ARGV: run_id, fanId, nowMs, token (this request's), note, hasNote ('1' or
--       '0'), mode, orderKey, fanHash, lateKey
--   mode 'direct':   the caller knows of no line (a lined event answers 'lined');
--        'turn':     the fan's turn in the line came, orderKey is its place;
--        'existing': its turn passed long ago: only what it already holds.
--   fanHash, lateKey: for a place in the pre-queue's draw, the fan's hash
--     as line.lua counts it, and its place's order key if the draw does not
--     hold it (counted after the seal: the opening's first bucket); '' else.
--
-- Replies:
--   {'reserved', position, acceptedAtMs, hasNote, note}: send it to SQS, then confirm;
--   {'existing', position, acceptedAtMs, hasNote, note}: already queued;
--   {'door', rank, dueMs, chanceMs}: at the door, rank fans ahead of it, its
--     grant due in dueMs (-1: no place is free now); when none is, a place
--     may come back in chanceMs (the first grant's lapse; -1: unknown);
--   {'sold_out'}, {'not_found'}, {'not_open'}, {'closed'}, {'turn_missed'},
--   {'lined'}, {'state_lost'}, {'absent'} (prelude.lua's refusal).
-- A call in the line ('turn' or 'existing') gets {reply, line state}
-- (pace.lua's line_state) unless the event is not there.

local keys = {meta = KEYS[1], fans = KEYS[2], notes = KEYS[3], pending = KEYS[4],
  door = KEYS[5], grants = KEYS[6], joined = KEYS[7]}
local run_id, fan, now, token = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local note, has_note, mode, order_key = ARGV[5], ARGV[6] == '1', ARGV[7], ARGV[8]
local fan_hash, late_key = ARGV[9], ARGV[10]

-- An entry's reply with the note its fan's record holds.
local function entry_reply(tag, position, accepted_at)
  local held = redis.call('HGET', keys.notes, fan)
  if held then return {tag, position, accepted_at, '1', held} end
  return {tag, position, accepted_at, '0', ''}
end

-- The reply to a fan whose send this request just took on: its note is
-- this request's (a note lives only beside a record this script owned,
-- and a grant holds none).
local function new_entry_reply(position, accepted_at)
  if has_note then return {'reserved', position, accepted_at, '1', note} end
  return {'reserved', position, accepted_at, '0', ''}
end

-- This request sends the fan's entry: its record owned by `token`, its
-- note, and its place among the pending sends.
local function own_send(position, accepted_at)
  redis.call('HSET', keys.fans, fan, record_of(position, accepted_at, token))
  if has_note then redis.call('HSET', keys.notes, fan, note) end
  redis.call('ZADD', keys.pending, int(now), fan)
end

-- A new place for this fan, its send owned by this request.
local function reserve(ev)
  local position = take_place(ev)
  save_event(ev, keys)
  own_send(position, now)
  return new_entry_reply(int(position), int(now))
end

-- What a fan that already holds a place gets.
local function answer_held(record)
  local position, accepted_at, owner = parse_record(record)
  if owner == '' then return entry_reply('existing', position, accepted_at) end
  if owner == GRANTED then
    -- The fan claims its grant: this request sends the entry.
    own_send(position, accepted_at)
    redis.call('ZREM', keys.grants, fan)
    return new_entry_reply(position, accepted_at)
  end
  -- Pending: this request takes the send over, with the same position. The
  -- earlier send may still land, so the record becomes shared: no request
  -- may release it any more, only the sweep (which looks in PostgreSQL and
  -- the DLQ first).
  if owner ~= token then
    redis.call('HSET', keys.fans, fan, record_of(position, accepted_at, token) .. ':shared')
    redis.call('ZADD', keys.pending, int(now), fan)
  end
  return entry_reply('reserved', position, accepted_at)
end

-- A fan whose turn came: the pace catches up with the fans already at the
-- door, this fan joins it at its place (a better place it brings replaces
-- a worse one), and claims at once a grant it gets now, if any.
-- A place in the draw stands only if the gate counted its fan in the draw;
-- one counted later takes the place it was counted at. A line restored
-- since its pre-queue opened may have lost who was counted (its draw is
-- withheld): the place stands as the fan holds it.
local function drawn_or_late()
  if late_key == '' then return order_key end
  if redis.call('HGET', keys.joined, fan_hash) == 'p' then return order_key end
  local m = redis.call('HMGET', keys.meta, 'linePrequeueMs', 'lineRestoredAt')
  if m[2] and tonumber(m[2]) >= tonumber(m[1] or '0') then return order_key end
  return late_key
end

local function at_the_door(ev)
  order_key = drawn_or_late()
  if sold_out_for_good(ev, keys) then
    redis.call('ZREM', keys.door, fan)
    return {'sold_out'}
  end
  local _, granted = catch_up(ev, keys, now)
  -- The catch-up may have granted this very fan, at the door since a call
  -- before: it claims the grant.
  local record = nil
  if granted > 0 then record = redis.call('HGET', keys.fans, fan) end
  if not record and ev.door_empty and (ev.tokens or 0) >= 1 and room(ev) > 0 then
    -- Nobody at the door and a token free (a line that keeps up): this fan
    -- would be the door's head, granted and claiming in this call, so it
    -- takes its place at once, without the door and the grants.
    ev.tokens = ev.tokens - 1
    local position = grant_place(ev, tonumber(order_key))
    save_event(ev, keys)
    own_send(position, now)
    return new_entry_reply(int(position), int(now))
  end
  if not record then
    redis.call('ZADD', keys.door, 'LT', order_key, fan)
    ev.door_empty = nil
    if grant_now(ev, keys, now) > 0 then record = redis.call('HGET', keys.fans, fan) end
  end
  save_event(ev, keys)
  if record then return answer_held(record) end
  local rank = redis.call('ZRANK', keys.door, fan)
  if room(ev) <= 0 then
    -- No place is free: one may come back when the first grant lapses.
    local first = redis.call('ZRANGE', keys.grants, 0, 0, 'WITHSCORES')
    local chance = '-1'
    if #first > 0 then chance = int(math.max(0, tonumber(first[2]) - now)) end
    return {'door', int(rank), '-1', chance}
  end
  return {'door', int(rank), int(due_in(ev, rank, now)), '-1'}
end

local function decide()
  local refused = refusal(keys.meta, run_id)
  if refused then return {refused} end
  local ev = read_event(keys.meta)
  if not ev then return {'not_found'} end
  local lined = ev.rate ~= nil
  if lined and mode == 'direct' then return {'lined'} end
  local record = redis.call('HGET', keys.fans, fan)
  if record and lined then
    -- The pace may lapse this very grant: read the record again if it
    -- lapsed any.
    if pace(ev, keys, now) > 0 then record = redis.call('HGET', keys.fans, fan) end
  end
  if record then return answer_held(record), ev end
  if mode == 'existing' then return {'turn_missed'}, ev end
  if now >= ev.closes then return {'closed'}, ev end
  if lined then return at_the_door(ev), ev end
  if now < ev.opens then return {'not_open'}, ev end
  if room(ev) <= 0 then return {'sold_out'}, ev end
  return reserve(ev), ev
end

local reply, ev = decide()
if mode == 'direct' or not ev then return reply end
return {reply, line_state(ev, keys)}
