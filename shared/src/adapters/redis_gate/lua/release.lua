-- Give a pending reservation's place back. Only a pending record is
-- released: by the request that owns it (token) when no other request ever
-- took it over, or by the sweep (token '' and a cutoff the reservation must
-- be older than). A queued entry never is, nor a grant (its lapse gives it
-- back, pace.lua).
-- KEYS: meta, fans, notes, pending
-- ARGV: fanId, position, token, cutoffMs
-- Replies 1 when the place was given back, else 0.
local meta_key, fans_key, notes_key, pending_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local fan, wanted, token, cutoff = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local record = redis.call('HGET', fans_key, fan)
if not record then return 0 end
local position, _, owner, shared = parse_record(record)
if position ~= wanted or owner == '' or owner == GRANTED then return 0 end
if token ~= '' and (owner ~= token or shared ~= '') then return 0 end
if cutoff ~= '' then
  local since = redis.call('ZSCORE', pending_key, fan)
  if since and tonumber(since) > tonumber(cutoff) then return 0 end
end
redis.call('HDEL', fans_key, fan)
redis.call('HDEL', notes_key, fan)
redis.call('ZREM', pending_key, fan)
redis.call('HINCRBY', meta_key, 'taken', -1)
return 1
