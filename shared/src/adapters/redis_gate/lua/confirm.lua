-- Mark a pending reservation as durably queued (SQS acknowledged a send, or
-- the sweep found its row or its dead letter).
-- KEYS: fans, pending
-- ARGV: fanId, position
-- Replies 1 when the record at that position is now queued, else 0.
local fans_key, pending_key = KEYS[1], KEYS[2]
local fan, wanted = ARGV[1], ARGV[2]

local record = redis.call('HGET', fans_key, fan)
if not record then return 0 end
local position, accepted_at, owner = parse_record(record)
if position ~= wanted then return 0 end
if owner ~= '' then
  redis.call('HSET', fans_key, fan, record_of(position, accepted_at, ''))
  redis.call('ZREM', pending_key, fan)
end
return 1
