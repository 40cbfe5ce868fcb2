-- Read one fan's entry in one round trip.
-- KEYS: state, meta, fans, notes
-- ARGV: fanId
if redis.call('EXISTS', KEYS[1]) == 0 then return {'state_lost'} end
if redis.call('EXISTS', KEYS[2]) == 0 then return {'not_found'} end
local rec = redis.call('HGET', KEYS[3], ARGV[1])
if not rec then return {'none'} end
local pos, at, tok = string.match(rec, '^(%d+):(%d+):?(.*)$')
if tok ~= '' then return {'pending'} end
local note = redis.call('HGET', KEYS[4], ARGV[1])
if note then return {'ok', pos, at, '1', note} end
return {'ok', pos, at, '0', ''}
