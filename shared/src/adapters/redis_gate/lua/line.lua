-- One execution environment's sync with an event's line, in one round
-- trip: count the fans it gave a place since its last sync, each fan once
-- however often it joined; run the pace; read back what the line needs.
--
-- KEYS: meta, counts, joined, fans, pending, door, grants, syncing,
--       draw
--   counts: u32 counters (BITFIELD), the pre-queue's first, then one per
--   100 ms bucket after the opening; joined: fan hash -> its bucket ('p' in
--   the pre-queue), the place a fan was counted at; syncing: environment
--   -> when it last synced (ms), a sorted set of the last minute's; draw:
--   the 8-byte hashes of the fans counted in the pre-queue, in the order
--   counted, until the draw is sealed.
-- ARGV: run_id, nowMs, servedSeen, advanceTo, fromBucket, environment ('' for
--       the housekeeping, which is not one), drawSeen, closesBeforeMs,
--       sealedBeforeMs, seated (n), then
--       fanId, orderKey (x n: fans the environment saw at the door, put back
--       there after a restore), then fanHash, bucket (x m)
--   servedSeen: the served mark the environment last saw ('' none): taken
--     when the gate holds none (a restore cleared it);
--   advanceTo: an order key the environment's front reached ('' none):
--     the served mark moves there when nobody is at the door and the pace
--     found nobody to grant to (an idle line catches up with its fans);
--   fromBucket: the first bucket whose count to read back (-1: the served
--     mark's, less RECOUNT_BUCKETS, and no earlier than the first counted);
--   drawSeen: the digest of the draw the environment knows ('' none): taken
--     when the gate holds none (a restore cleared it);
--   closesBeforeMs, sealedBeforeMs: how long before the opening the draw
--     closes, and is sealed (rules/line/draw.rs): a line whose pre-queue
--     opens before the close has a draw, sealed by the first sync at or
--     after its time as the SHA-1 of `draw`; a pre-queue fan counted after
--     the seal is counted at the opening's first bucket instead, and its
--     environment hears so as a duplicate counted there.
--
-- Replies {'state_lost'}, {'absent'}, {'not_found'}, {'unlined', capacity, taken}, or
-- {'ok', capacity, taken, opensAtMs, closesAtMs, lineRate, joinableFromMs,
--  seed, line state (pace.lua), duplicates, prequeued, fromBucket,
--  buckets, counts, restoredAt, environments, drawDigest}: duplicates is {index,
--  bucket, ...} for each fan of this sync already counted (at that bucket);
--  counts are at most READ_BUCKETS u32s from fromBucket on; buckets is how
--  many the gate counts; restoredAt when the line was last restored (''
--  never); environments how many synced in the last minute, from which
--  each spaces its syncs so that all of them together stay within a budget;
--  drawDigest the sealed draw's digest ('' none yet, or no draw).

local keys = {meta = KEYS[1], counts = KEYS[2], joined = KEYS[3], fans = KEYS[4],
  pending = KEYS[5], door = KEYS[6], grants = KEYS[7], syncing = KEYS[8], draw = KEYS[9]}
local run_id, now, served_seen, advance_to, from = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5])
local environment, draw_seen = ARGV[6], ARGV[7]
local closes_before, sealed_before = tonumber(ARGV[8]), tonumber(ARGV[9])
local SEATED = 11
local FIRST_FAN = SEATED + 2 * tonumber(ARGV[10])

-- Buckets re-read behind the served mark when the caller does not say
-- (10 s): longer than an environment keeps a place before counting it.
local RECOUNT_BUCKETS = 100
-- Buckets per reply (five minutes); the caller reads on from where it stopped.
local READ_BUCKETS = 3000
-- Arrival order keys hold their 100 ms bucket above 24 bits.
local BUCKET_SHIFT = 16777216
-- An environment that has not synced for this long is no longer counted:
-- twice the longest an environment waits between syncs (30 s).
local SYNCING_WINDOW_MS = 60000

-- Counts each fan of this sync once: a fan counted before (another device,
-- a lost ticket, a retried sync) is not counted again, and the caller hears
-- where it was counted. The first arrival bucket ever counted is kept, so
-- a line nobody was served from yet is read from there, not from its
-- opening.
local function count_fans(ev, sealed)
  local increments, duplicates = {}, {}
  local first = nil
  for i = FIRST_FAN, #ARGV, 2 do
    local hash, bucket = ARGV[i], ARGV[i + 1]
    -- Past the seal the draw takes nobody: the opening's first bucket.
    local late = bucket == 'p' and sealed
    if late then bucket = '0' end
    if redis.call('HSETNX', keys.joined, hash, bucket) == 1 then
      local offset = 0
      if bucket == 'p' then redis.call('APPEND', keys.draw, hash) end
      if late then
        duplicates[#duplicates + 1] = int((i - FIRST_FAN) / 2)
        duplicates[#duplicates + 1] = '0'
      end
      if bucket ~= 'p' then
        offset = tonumber(bucket) + 1
        if not first or offset - 1 < first then first = offset - 1 end
      end
      increments[offset] = (increments[offset] or 0) + 1
    else
      duplicates[#duplicates + 1] = int((i - FIRST_FAN) / 2)
      duplicates[#duplicates + 1] = redis.call('HGET', keys.joined, hash)
    end
  end
  local bitfield = {'BITFIELD', keys.counts}
  for offset, n in pairs(increments) do
    bitfield[#bitfield + 1] = 'INCRBY'
    bitfield[#bitfield + 1] = 'u32'
    bitfield[#bitfield + 1] = '#' .. offset
    bitfield[#bitfield + 1] = int(n)
  end
  if #bitfield > 2 then redis.call(unpack(bitfield)) end
  if first and (not ev.first_bucket or first < ev.first_bucket) then
    ev.first_bucket = first
    redis.call('HSET', keys.meta, 'lineFirstBucket', int(first))
  end
  return duplicates
end

-- Puts the fans an environment saw at the door back there (after a
-- restore), each at its place, unless it holds one already.
local function seat_fans()
  for i = SEATED, FIRST_FAN - 1, 2 do
    local fan = ARGV[i]
    if redis.call('HEXISTS', keys.fans, fan) == 0 then
      redis.call('ZADD', keys.door, 'LT', ARGV[i + 1], fan)
    end
  end
end

-- Moves the served mark to `key` when the line is idle: nobody at the door
-- and a full bucket after the pace ran.
local function advance_when_idle(ev, key)
  if not key or now < ev.opens then return end
  if ev.served and key <= ev.served then return end
  if redis.call('ZCARD', keys.door) > 0 or (ev.tokens or 0) < burst_of(ev) then return end
  ev.served = key
  redis.call('HSET', keys.meta, 'lineServed', int(key))
end

-- Notes this environment's sync; how many environments synced lately.
local function count_environments()
  if environment ~= '' then redis.call('ZADD', keys.syncing, now, environment) end
  redis.call('ZREMRANGEBYSCORE', keys.syncing, '-inf', '(' .. int(now - SYNCING_WINDOW_MS))
  redis.call('PEXPIRE', keys.syncing, SYNCING_WINDOW_MS)
  return redis.call('ZCARD', keys.syncing)
end

-- The draw's digest: the one held; else an environment's (a restore
-- cleared it); else, at its time, sealed now over who was counted in it.
-- nil while there is none, or when the line has no draw.
local function seal(ev, d)
  if d[5] then return d[5] end
  local prequeue_from = tonumber(d[1] or ev.opens)
  if prequeue_from >= ev.opens - closes_before or now < ev.opens - sealed_before then return nil end
  local digest = draw_seen
  if digest == '' then digest = redis.sha1hex(redis.call('GET', keys.draw) or '') end
  redis.call('HSET', keys.meta, 'lineDrawDigest', digest)
  return digest
end

local function read_counts(ev)
  if from < 0 then
    from = ev.first_bucket or 0
    if ev.served and ev.served >= 0 then
      from = math.max(from, math.floor(ev.served / BUCKET_SHIFT) - RECOUNT_BUCKETS)
    end
  end
  local buckets = math.max(0, redis.call('STRLEN', keys.counts) / 4 - 1)
  local upto = math.min(buckets - 1, from + READ_BUCKETS - 1)
  local counts = ''
  if upto >= from then counts = redis.call('GETRANGE', keys.counts, (from + 1) * 4, (upto + 1) * 4 + 3) end
  return redis.call('GETRANGE', keys.counts, 0, 3), int(from), int(buckets), counts
end

local function sync()
  local refused = refusal(keys.meta, run_id)
  if refused then return {refused} end
  local ev = read_event(keys.meta)
  if not ev then return {'not_found'} end
  if not ev.rate then return {'unlined', int(ev.capacity), int(ev.taken)} end
  local d = redis.call('HMGET', keys.meta, 'linePrequeueMs', 'lineSeed', 'lineFirstBucket', 'lineRestoredAt',
    'lineDrawDigest')
  ev.first_bucket = number_or(d[3], nil)
  if not ev.served and served_seen ~= '' then ev.served = tonumber(served_seen) end
  local duplicates = count_fans(ev, d[5] ~= false and d[5] ~= nil)
  local digest = seal(ev, d)
  seat_fans()
  pace(ev, keys, now)
  if advance_to ~= '' then advance_when_idle(ev, tonumber(advance_to)) end
  local prequeued, first, buckets, counts = read_counts(ev)
  return {'ok', int(ev.capacity), int(ev.taken), int(ev.opens), int(ev.closes), tostring(ev.rate),
    d[1] or int(ev.opens), d[2] or '', line_state(ev, keys), duplicates, prequeued, first, buckets, counts,
    d[4] or '', count_environments(), digest or ''}
end

return sync()
