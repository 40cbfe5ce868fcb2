-- Read an event's public view in one round trip.
-- KEYS: state, meta
-- ARGV: run_id
-- Replies {'ok', title, opensAt, closesAt, capacity, taken, lineSeed,
-- prequeued}, {'not_found'} or {'state_lost'}: lineSeed is '' without a
-- line, prequeued '1' when the line has a pre-queue (joining opens before
-- the opening). The seed stays in the entry function (only its commitment
-- is shown before the reveal).
local state_key, meta_key = KEYS[1], KEYS[2]

if not fence_holds(state_key, ARGV[1]) then return {'state_lost'} end
local m = redis.call('HMGET', meta_key, 'title', 'opensAt', 'closesAt', 'capacity', 'taken', 'lineRate',
  'lineSeed', 'linePrequeueMs', 'opensAtMs')
if not m[4] then return {'not_found'} end
local seed, prequeued = '', '0'
if m[6] and m[7] then
  seed = m[7]
  if m[8] and m[9] and tonumber(m[8]) < tonumber(m[9]) then prequeued = '1' end
end
return {'ok', m[1], m[2], m[3], m[4], m[5] or '0', seed, prequeued}
