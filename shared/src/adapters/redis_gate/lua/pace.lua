-- The event and its line's pace (loaded after the prelude, in front of
-- admit.lua and line.lua).
--
-- A lined event grants its places to the fans at its door: the fans whose
-- turn came and who called the gate, ordered by their places (order keys).
-- A grant reserves the place at once, whether or not its fan is calling at
-- that moment, so a fan's network costs the line no admission; the fan
-- claims it with its next call. A grant its fan does not claim within
-- CLAIM_GRACE_MS lapses and the place goes back.

-- The bucket refills at PACE_HEADROOM x the rate and holds BURST_SECONDS of
-- it, so no window of one second grants more than 1.05 + 0.05 = 1.1 x the
-- rate (the rate plus one below 20 a second). The 5% above the rate make up
-- for grants that lapse: a fan that walked away after it reached the door.
local PACE_HEADROOM = 1.05
local BURST_SECONDS = 0.05
-- Longer than a claim takes a fan that follows the protocol: it was told
-- when its grant is due, and comes back one round trip later (the drill's
-- network caps a round trip at 3 s).
local CLAIM_GRACE_MS = 5000
-- Grants or lapses per call at most, so one call's work stays small.
local MOST_PER_CALL = 256
-- How often the grants are looked at for lapses, at most: a grant's fan
-- gets CLAIM_GRACE_MS and up to this much more, and a call in between
-- saves the look (one command fewer in most calls).
local LAPSE_EVERY_MS = 100

local EVENT_FIELDS = {'opensAtMs', 'closesAtMs', 'capacity', 'taken', 'lineRate',
  'lineTokens', 'lineTokensAt', 'lineServed', 'lineGranted', 'lineLapsedAt', 'seq'}

local function number_or(value, default)
  if value then return tonumber(value) end
  return default
end

-- The event as its meta hash holds it, or nil when it does not exist. The
-- script changes it in memory and save_event writes back what changed, in
-- one command. door_empty is true once a look at the door found nobody
-- (and nobody joined since), nil when unknown.
local function read_event(meta_key)
  local m = redis.call('HMGET', meta_key, unpack(EVENT_FIELDS))
  if not m[3] then return nil end
  local ev = {
    opens = tonumber(m[1]), closes = tonumber(m[2]),
    capacity = tonumber(m[3]), taken = number_or(m[4], 0),
    rate = number_or(m[5], nil), tokens = number_or(m[6], nil), tokens_at = number_or(m[7], nil),
    served = number_or(m[8], nil), granted = number_or(m[9], 0), lapsed_at = number_or(m[10], nil),
    seq = number_or(m[11], 0), spent = false, door_empty = nil,
  }
  ev.saved = {taken = ev.taken, seq = ev.seq, granted = ev.granted, served = ev.served, lapsed_at = ev.lapsed_at}
  return ev
end

-- Takes the next place: its position (the positions are never handed out
-- twice, a restore included).
local function take_place(ev)
  ev.taken = ev.taken + 1
  ev.seq = ev.seq + 1
  return ev.seq
end

-- Takes a place for the fan at `key` in the line, with one of the
-- bucket's tokens (the caller took it off); its position.
local function grant_place(ev, key)
  ev.granted = ev.granted + 1
  ev.spent = true
  if not ev.served or key > ev.served then ev.served = key end
  return take_place(ev)
end

local function burst_of(ev) return math.max(1, ev.rate * BURST_SECONDS) end
local function refill_of(ev) return ev.rate * PACE_HEADROOM end

-- Places the line may still grant: none once taken reaches capacity.
local function room(ev) return ev.capacity - ev.taken end

-- Sold out for good: every place taken, and none of them can come back
-- (no grant waiting for its fan, no send still pending).
local function sold_out_for_good(ev, keys)
  return room(ev) <= 0 and redis.call('ZCARD', keys.grants) == 0 and redis.call('ZCARD', keys.pending) == 0
end

-- Gives back the places of grants whose fans did not claim them in time
-- (looked at every LAPSE_EVERY_MS at most); how many lapsed, and whether
-- the line had no room before.
local function lapse(ev, keys, now)
  if ev.lapsed_at and now >= ev.lapsed_at and now - ev.lapsed_at < LAPSE_EVERY_MS then return 0, false end
  ev.lapsed_at = now
  local lapsed = redis.call('ZRANGEBYSCORE', keys.grants, '-inf', now, 'LIMIT', 0, MOST_PER_CALL)
  if #lapsed == 0 then return 0, false end
  local full = room(ev) <= 0
  for _, fan in ipairs(lapsed) do
    local record = redis.call('HGET', keys.fans, fan)
    if record and select(3, parse_record(record)) == GRANTED then
      redis.call('HDEL', keys.fans, fan)
      ev.taken = ev.taken - 1
    end
  end
  redis.call('ZREM', keys.grants, unpack(lapsed))
  return #lapsed, full
end

-- Grants the door's head one place at `at` (ms); false when nobody at the
-- door is without one.
local function grant_head(ev, keys, at)
  while true do
    local head = redis.call('ZPOPMIN', keys.door)
    if #head == 0 then
      ev.door_empty = true
      return false
    end
    ev.door_empty = nil
    local fan, key = head[1], tonumber(head[2])
    -- A fan at the door holds no place; one that does (it was granted and
    -- called again) keeps it, and the grant goes to the next.
    if redis.call('HEXISTS', keys.fans, fan) == 0 then
      local position = grant_place(ev, key)
      redis.call('HSET', keys.fans, fan, record_of(position, at, GRANTED))
      redis.call('ZADD', keys.grants, int(at + CLAIM_GRACE_MS), fan)
      return true
    end
  end
end

-- Catches the pace up to now, before the caller (if it joins) is at the
-- door: the door only changes at calls, so the fans at it were there since
-- the last call, and each grant goes to the door's head at the moment its
-- token came (back-dated), none lost to a bucket that filled while nobody
-- called. Spaced at the refill, any one second still holds at most the
-- bucket's burst plus a second of refill. Nothing is granted before the
-- opening. How many places it lapsed and granted.
local function catch_up(ev, keys, now)
  -- A place a lapse gave back to a full line was free only from now.
  local lapsed, freed_now = lapse(ev, keys, now)
  if now < ev.opens then return lapsed, 0 end
  local burst, refill = burst_of(ev), refill_of(ev)
  local last = ev.tokens_at or ev.opens
  -- The bucket's clock never goes back: environments' clocks differ a little.
  local clock = math.max(now, last)
  local tokens = ev.tokens or burst
  local grants = 0
  while grants < MOST_PER_CALL and room(ev) > 0 do
    -- When the next whole token came.
    local at = last + math.max(0, 1 - tokens) * 1000 / refill
    if at > clock then break end
    if not grant_head(ev, keys, math.floor(freed_now and math.max(at, now) or at)) then break end
    grants = grants + 1
    tokens = tokens + (at - last) * refill / 1000 - 1
    last = at
  end
  ev.tokens = math.min(burst, tokens + (clock - last) * refill / 1000)
  ev.tokens_at = clock
  return lapsed, grants
end

-- Grants the whole tokens left now, to the door's head (the caller, if it
-- just joined at the head); how many.
local function grant_now(ev, keys, now)
  local grants = 0
  if now < ev.opens then return grants end
  while (ev.tokens or 0) >= 1 and room(ev) > 0 and grant_head(ev, keys, now) do
    ev.tokens = ev.tokens - 1
    grants = grants + 1
  end
  return grants
end

-- Writes back what changed, if anything. The bucket is written only when
-- a token was spent: a bucket that only refilled reads the same from its
-- older time (the refill is linear up to the burst), and the back-dated
-- grants of a later call still come after every call that granted none.
local function save_event(ev, keys)
  local fields = {}
  local function put(name, value)
    fields[#fields + 1] = name
    fields[#fields + 1] = value
  end
  if ev.taken ~= ev.saved.taken then put('taken', int(ev.taken)) end
  if ev.seq ~= ev.saved.seq then put('seq', int(ev.seq)) end
  if ev.granted ~= ev.saved.granted then put('lineGranted', int(ev.granted)) end
  if ev.served and ev.served ~= ev.saved.served then put('lineServed', int(ev.served)) end
  if ev.lapsed_at and ev.lapsed_at ~= ev.saved.lapsed_at then put('lineLapsedAt', int(ev.lapsed_at)) end
  if ev.spent and ev.tokens then
    put('lineTokens', tostring(ev.tokens))
    put('lineTokensAt', int(ev.tokens_at))
  end
  if #fields > 0 then redis.call('HSET', keys.meta, unpack(fields)) end
end

-- The pace with nobody joining: catch up, grant what is left, save. How
-- many places lapsed.
local function pace(ev, keys, now)
  local lapsed = catch_up(ev, keys, now)
  grant_now(ev, keys, now)
  save_event(ev, keys)
  return lapsed
end

-- When a fan at the door, `rank` fans behind its head, is due its grant
-- (ms from now): the bucket's refill, from the opening or the end of a
-- restore's hold if either is still ahead.
local function due_in(ev, rank, now)
  local wait = (rank + 1 - math.floor(ev.tokens or 0)) * 1000 / refill_of(ev)
  local start = math.max(ev.opens, ev.tokens_at or now, now)
  return (start - now) + math.max(0, math.ceil(wait))
end

-- The line's state every lined reply carries: taken, capacity, the served
-- mark, places granted so far, fans at the door, sold out for good, and
-- the fans at the door whose places are before the served mark (each one
-- more place to serve before anyone after it).
local function line_state(ev, keys)
  local final = '0'
  if sold_out_for_good(ev, keys) then final = '1' end
  local behind, at_door = 0, 0
  if not ev.door_empty then
    if ev.served then behind = redis.call('ZCOUNT', keys.door, '-inf', '(' .. int(ev.served)) end
    at_door = redis.call('ZCARD', keys.door)
  end
  return {int(ev.taken), int(ev.capacity), ev.served and int(ev.served) or '',
    int(ev.granted), int(at_door), final, int(behind)}
end
