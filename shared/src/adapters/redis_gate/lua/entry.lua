-- Read one fan's entry in one round trip.
-- KEYS: state, meta, fans, notes
-- ARGV: server run_id, fanId
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'state_lost'} end
local m = redis.call('HMGET', KEYS[2], 'capacity', 'archived')
if not m[1] then return {'not_found'} end
local rec = redis.call('HGET', KEYS[3], ARGV[2])
if not rec then
  -- A closed event restored without its fan records cannot say "none".
  if m[2] == '1' then return {'archived'} end
  return {'none'}
end
local pos, at, tok = string.match(rec, '^(%d+):(%d+):?([^:]*)')
if tok ~= '' then return {'pending'} end
local note = redis.call('HGET', KEYS[4], ARGV[2])
if note then return {'ok', pos, at, '1', note} end
return {'ok', pos, at, '0', ''}
