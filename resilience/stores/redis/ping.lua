-- The store's health probe: a script runs and may write (a server that pauses writes,
-- or a replica left behind by a failover, is not healthy). KEYS: a probe key.
redis.call('SET', KEYS[1], '1', 'PX', 1000)
return 1
