-- One execution environment's sync with an event's line, in one round trip:
-- add the tickets it issued since its last sync to the counts, and read back
-- what the line needs (the event's window and capacity, the line's rate,
-- seed and pauses, the counts). At most once a second per environment,
-- whatever its traffic: joins and polls between syncs cost Redis nothing.
-- KEYS: state, meta, line (the counts: a string of u32 counters, the
--       pre-queue's first, then one per 100 ms bucket after the opening)
-- ARGV: server run_id, prequeued (tickets issued before the opening),
--       fromBucket (the first bucket whose count to return), then
--       bucket, issued (x n): tickets issued in that bucket
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'state_lost'} end
local m = redis.call('HMGET', KEYS[2], 'capacity', 'taken', 'opensAtMs', 'closesAtMs',
  'lineRate', 'linePrequeueMs', 'lineSeed', 'linePauses')
if not m[1] then return {'not_found'} end
if not m[5] then return {'unlined', m[1], m[2] or '0'} end
local bitfield = {'BITFIELD', KEYS[3]}
if tonumber(ARGV[2]) > 0 then
  bitfield[#bitfield + 1] = 'INCRBY'
  bitfield[#bitfield + 1] = 'u32'
  bitfield[#bitfield + 1] = '#0'
  bitfield[#bitfield + 1] = ARGV[2]
end
for i = 4, #ARGV, 2 do
  bitfield[#bitfield + 1] = 'INCRBY'
  bitfield[#bitfield + 1] = 'u32'
  bitfield[#bitfield + 1] = '#' .. (tonumber(ARGV[i]) + 1)
  bitfield[#bitfield + 1] = ARGV[i + 1]
end
if #bitfield > 2 then redis.call(unpack(bitfield)) end
-- At most 3,000 buckets (five minutes) per reply; the caller asks for the
-- rest next time.
local from = tonumber(ARGV[3])
local buckets = math.max(0, redis.call('STRLEN', KEYS[3]) / 4 - 1)
local upto = math.min(buckets - 1, from + 2999)
local counts = ''
if upto >= from then counts = redis.call('GETRANGE', KEYS[3], (from + 1) * 4, (upto + 1) * 4 + 3) end
return {'ok', m[1], m[2] or '0', m[3], m[4], m[5], m[6] or m[3], m[7] or '', m[8] or '',
  redis.call('GETRANGE', KEYS[3], 0, 3), tostring(from), tostring(buckets), counts}
