-- Read an event's public view in one round trip.
-- KEYS: state, meta
-- ARGV: server run_id
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'state_lost'} end
local m = redis.call('HMGET', KEYS[2], 'title', 'opensAt', 'closesAt', 'capacity', 'taken')
if not m[4] then return {'not_found'} end
return {'ok', m[1], m[2], m[3], m[4], m[5] or '0'}
