-- Is the gate state gone, and since when? Records the first time anyone
-- noticed, so the restore can wait until requests in flight then are over.
-- KEYS: state, lostAt
-- ARGV: nowMs
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
redis.call('SET', KEYS[2], ARGV[1], 'NX')
return tonumber(redis.call('GET', KEYS[2]))
