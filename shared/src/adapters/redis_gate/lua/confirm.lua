-- Mark a pending reservation as durably queued (SQS acknowledged a send, or
-- the sweep found its row or its dead letter).
-- KEYS: fans, pending
-- ARGV: fanId, position
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then return 0 end
local pos, at, tok = string.match(rec, '^(%d+):(%d+):?([^:]*)')
if pos ~= ARGV[2] then return 0 end
if tok ~= '' then
  redis.call('HSET', KEYS[1], ARGV[1], pos .. ':' .. at)
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 1
