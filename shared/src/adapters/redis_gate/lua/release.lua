-- Give a pending reservation's slot back. Only a pending record is released:
-- by the request that owns it (token) when no other request ever took it
-- over, or by the sweep (token '' and a cutoff the reservation must be older
-- than). A confirmed entry never is.
-- KEYS: meta, fans, notes, pending
-- ARGV: fanId, position, token, cutoffMs
local rec = redis.call('HGET', KEYS[2], ARGV[1])
if not rec then return 0 end
local pos, at, tok, shared = string.match(rec, '^(%d+):(%d+):?([^:]*):?(.*)$')
if pos ~= ARGV[2] or tok == '' then return 0 end
if ARGV[3] ~= '' and (tok ~= ARGV[3] or shared ~= '') then return 0 end
if ARGV[4] ~= '' then
  local since = redis.call('ZSCORE', KEYS[4], ARGV[1])
  if since and tonumber(since) > tonumber(ARGV[4]) then return 0 end
end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'taken', -1)
return 1
