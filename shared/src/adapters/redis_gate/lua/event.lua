-- Read an event's public view in one round trip.
-- KEYS: state, meta
-- ARGV: run_id
-- Replies {'ok', title, opensAt, closesAt, capacity, taken}, {'not_found'}
-- or {'state_lost'}.
local state_key, meta_key = KEYS[1], KEYS[2]

if not fence_holds(state_key, ARGV[1]) then return {'state_lost'} end
local m = redis.call('HMGET', meta_key, 'title', 'opensAt', 'closesAt', 'capacity', 'taken')
if not m[4] then return {'not_found'} end
return {'ok', m[1], m[2], m[3], m[4], m[5] or '0'}
