-- Read an event's public view in one round trip.
-- KEYS: meta
-- ARGV: run_id
-- Replies {'ok', title, opensAt, closesAt, capacity, taken, lineSeed,
-- linePrequeueMs, opensAtMs, lineDrawDigest}, {'not_found'}, {'state_lost'}
-- or {'absent'}: lineSeed is '' without a line, linePrequeueMs when
-- joining opens ('' without a line), lineDrawDigest the sealed draw's
-- digest ('' none yet). The seed stays in the entry function (only its
-- commitment is shown before the reveal).
local meta_key = KEYS[1]

local refused = refusal(meta_key, ARGV[1])
if refused then return {refused} end
local m = redis.call('HMGET', meta_key, 'title', 'opensAt', 'closesAt', 'capacity', 'taken', 'lineRate',
  'lineSeed', 'linePrequeueMs', 'opensAtMs', 'lineDrawDigest')
if not m[4] then return {'not_found'} end
local seed, prequeue = '', ''
if m[6] and m[7] then
  seed, prequeue = m[7], m[8] or ''
end
return {'ok', m[1], m[2], m[3], m[4], m[5] or '0', seed, prequeue, m[9] or '', m[10] or ''}
