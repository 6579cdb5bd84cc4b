import FluxgateRedis

/// The two Lua scripts cluster mode runs in Redis. Each is one atomic step (Redis runs
/// a script to completion before any other command), so no replica ever reads a value
/// and writes a decision back while another replica changes it — the read-then-write
/// race that lets several times a limit through in stores driven command by command.
///
/// Both take the time from Redis (`TIME`), so replicas' clocks do not matter; tests
/// pass it as the last argument instead, to drive expiry without waiting.
enum ClusterScripts {
    /// The capacity ledger: `KEYS[1]` is a hash, one field per replica:
    /// `"<held> <demand> <expiry ms>"`. `ARGV`: replica id, slots wanted, running now,
    /// demand, `S`, lease TTL (ms), [now ms, or empty], [the field of the process this
    /// one replaced in an in-place upgrade], [a field to copy that entry to first: with
    /// a `cluster.replica_id` the predecessor's field is this one's, and its lease moves
    /// aside under the name the predecessor renames itself to, so that the slots its
    /// running requests hold stay counted], [this process's own name for that aside
    /// field, `<id>~<pid>`: when it exists, a successor has moved this lease there, and
    /// this renewal is made under it — not under the id, now the successor's lease].
    /// Drops expired leases, grants
    /// `min(wanted, S − Σ others' held)` (never negative) and records
    /// `held = max(grant, running)` — a replica whose share shrank still holds the
    /// slots its running requests occupy until it reports them finished. Returns
    /// `{grant, replicas (this one included), {others' demands}, {the predecessor's
    /// demand, held}, 1 if renewed under the aside name}` — the predecessor's part empty
    /// without one or once its lease is gone. The hash itself
    /// expires a minute after its last write: only garbage collection once every replica
    /// has gone, since each lease's expiry is decided against `now` above (with `ttl × 2`
    /// alone, a test whose steps took 4 s of wall time between calls found its ledger
    /// gone: `ClusterScriptTests` failed once on a loaded machine).
    static let lease = RedisScript(
        """
        local now = tonumber(ARGV[7])
        if not now then
          local t = redis.call('TIME')
          now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        end
        local id = ARGV[1]
        local aside = 0
        if ARGV[10] and ARGV[10] ~= '' and redis.call('HEXISTS', KEYS[1], ARGV[10]) == 1 then
          id = ARGV[10]
          aside = 1
        end
        local predecessor = {}
        if ARGV[8] and ARGV[8] ~= '' then
          local previous = redis.call('HGET', KEYS[1], ARGV[8])
          if previous then
            local held, peerDemand, expiry = string.match(previous, '^(%d+) (%d+) (%d+)$')
            if held ~= nil and tonumber(expiry) > now then
              predecessor = {tonumber(peerDemand), tonumber(held)}
              if ARGV[9] and ARGV[9] ~= '' then redis.call('HSET', KEYS[1], ARGV[9], previous) end
            end
          end
        end
        local want = tonumber(ARGV[2])
        local running = tonumber(ARGV[3])
        local demand = tonumber(ARGV[4])
        local slots = tonumber(ARGV[5])
        local ttl = tonumber(ARGV[6])
        local entries = redis.call('HGETALL', KEYS[1])
        local others = 0
        local replicas = 1
        local peers = {}
        for i = 1, #entries, 2 do
          local field = entries[i]
          if field ~= id then
            local held, peerDemand, expiry = string.match(entries[i + 1], '^(%d+) (%d+) (%d+)$')
            if held == nil or tonumber(expiry) <= now then
              redis.call('HDEL', KEYS[1], field)
            else
              others = others + tonumber(held)
              replicas = replicas + 1
              peers[#peers + 1] = tonumber(peerDemand)
            end
          end
        end
        local grant = math.min(want, slots - others)
        if grant < 0 then grant = 0 end
        local held = math.max(grant, running)
        redis.call('HSET', KEYS[1], id, string.format('%d %d %d', held, demand, now + ttl))
        redis.call('PEXPIRE', KEYS[1], ttl * 2 + 60000)
        return {grant, replicas, peers, predecessor, aside}
        """)

    /// The global token bucket: `KEYS[1]` is a hash `{tokens, ts}`. `ARGV`: rate per
    /// second, burst, tokens wanted, [now ms]. Refills by the time passed (capped at the
    /// burst; a missing bucket starts full), hands out `min(wanted, whole tokens)` and
    /// returns `{granted, wait ms}` — the wait until `wanted` tokens (at most the burst)
    /// will have accrued, 0 when the batch was filled.
    static let tokens = RedisScript(
        """
        local rate = tonumber(ARGV[1])
        local burst = tonumber(ARGV[2])
        local want = tonumber(ARGV[3])
        local now = tonumber(ARGV[4])
        if not now then
          local t = redis.call('TIME')
          now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
        end
        local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
        local tokens = tonumber(state[1])
        local ts = tonumber(state[2])
        if tokens == nil or ts == nil then
          tokens = burst
          ts = now
        end
        if now > ts then
          tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
          ts = now
        end
        local granted = math.min(want, math.floor(tokens))
        tokens = tokens - granted
        local wait = 0
        if granted < want then
          wait = math.ceil((math.min(want, burst) - tokens) * 1000 / rate)
        end
        redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%.17g', ts))
        redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 60000)
        return {granted, wait}
        """)
}
