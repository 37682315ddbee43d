/* SPDX-License-Identifier: MIT */
#ifndef PRUN_WQ_LUA_H
#define PRUN_WQ_LUA_H
/*
 * The Lua the work queue's scripts share (docs/work-queue.md), as string
 * macros prepended to the scripts of wq.c and wq_pool.c: the common
 * prologue (the run's keys, the clock, the terminal record), the claim,
 * the fenced completion and a pool slot's completions.
 */

/*
 * Shared Lua helpers, prepended to the scripts that need them. terminal()
 * writes an instance's one terminal record; its o and e (the instance's
 * stdout and stderr, run --distributed) go on the ends stream only, never
 * into the done hash.
 */
#define LUA_COMMON                                                             \
    "local P = ARGV[1]\n"                                                      \
    "local meta = KEYS[1]\n"                                                   \
    "if redis.call('EXISTS', meta) == 0 then return {-1} end\n"                \
    "local ttl = tonumber(redis.call('HGET', meta, 'ttl'))\n"                  \
    "local fk, dk, rk = P..':fence', P..':delay', P..':run'\n"                 \
    "local t = redis.call('TIME')\n"                                           \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"  \
    "local function touch(k) redis.call('PEXPIRE', k, ttl) end\n"              \
    "local function field(f, name)\n"                                          \
    "  for j = 1, #f, 2 do if f[j] == name then return f[j+1] end end\n"       \
    "end\n"                                                                    \
    "local function slotv(v)\n"                                                \
    "  local fence, t0, rest = string.match(v, '^(%d+) (%d+) (.*)$')\n"        \
    "  local k, a, p = string.match(rest, '^([^\\t]*)\\t(%d+)\\t(.*)$')\n"     \
    "  if not k then return fence, t0, rest end\n"                             \
    "  return fence, t0, k, a, p\n"                                            \
    "end\n"                                                                    \
    "local function terminal(k, fence, a, rec, ok, o, e)\n"                    \
    "  if redis.call('HSETNX', P..':done', k, fence..' '..a..' '..rec) == 0\n" \
    "  then return false end\n"                                                \
    "  if o and (#o > 0 or #e > 0) then\n"                                     \
    "    redis.call('XADD', P..':ends', '*', 'k', k, 'f', fence, 'a', a,\n"    \
    "      'r', rec, 'o', o, 'e', e)\n"                                        \
    "  else\n"                                                                 \
    "    redis.call('XADD', P..':ends', '*', 'k', k, 'f', fence, 'a', a,\n"    \
    "      'r', rec)\n"                                                        \
    "  end\n"                                                                  \
    "  redis.call('HINCRBY', meta, ok and 'ok' or 'failed', 1)\n"              \
    "  local tk = string.match(k, '^(.*) ') or ''\n"                           \
    "  redis.call('HINCRBY', meta, 'term:'..tk, 1)\n"                          \
    "  if ok then redis.call('HINCRBY', meta, 'okt:'..tk, 1) end\n"            \
    "  touch(P..':done') touch(P..':ends')\n"                                  \
    "  return true\n"                                                          \
    "end\n"                                                                    \
    "local function chunk_items(f, upto)\n"                                    \
    "  local xs, ps, p, pos = {}, {}, field(f, 'p'), 1\n"                      \
    "  for i in string.gmatch(field(f, 'x'), '%d+') do\n"                      \
    "    if upto and #xs >= upto then break end\n"                             \
    "    local c = string.find(p, ':', pos, true)\n"                           \
    "    local len = tonumber(string.sub(p, pos, c - 1))\n"                    \
    "    xs[#xs+1] = i ps[#ps+1] = string.sub(p, c + 1, c + len)\n"            \
    "    pos = c + 1 + len\n"                                                  \
    "  end\n"                                                                  \
    "  return xs, ps\n"                                                        \
    "end\n"                                                                    \
    "local function chunk_body(ps)\n"                                          \
    "  local b = {}\n"                                                         \
    "  for j, v in ipairs(ps) do b[j] = #v..':'..v end\n"                      \
    "  return table.concat(b)\n"                                               \
    "end\n"                                                                    \
    "local function wake(task)\n" /* a token for each slot waiting (next) */   \
    "  local ws = P..':waiting:'..task\n"                                      \
    "  local who = redis.call('SMEMBERS', ws)\n"                               \
    "  for _, c in ipairs(who) do\n"                                           \
    "    local k = P..':wake:'..c\n"                                           \
    "    redis.call('RPUSH', k, 1) redis.call('LTRIM', k, 0, 0) touch(k)\n"    \
    "  end\n"                                                                  \
    "  if #who > 0 then redis.call('DEL', ws) end\n"                           \
    "end\n"                                                                    \
    "local function finish(task, id)\n"                                        \
    "  local s = P..':s:'..task\n"                                             \
    "  redis.call('XACK', s, 'g', id)\n"                                       \
    "  redis.call('XDEL', s, id)\n"                                            \
    "  redis.call('HDEL', fk, task..' '..id)\n"                                \
    "  redis.call('HINCRBY', rk, task, -1)\n"                                  \
    "  touch(rk)\n"                                                            \
    "end\n"

/*
 * KEYS: meta. ARGV: prefix, consumer, want, lease_ms. Returns {-1} when
 * the run is gone, else a list of {task, id, fence, deliveries, fields}.
 */
#define LUA_CLAIM_FN                                                           \
    "local function claim(me, want, lease, only)\n"                            \
    "local m = redis.call('HMGET', meta, 'maxdel', 'state', 'minlease')\n"     \
    "local maxdel = tonumber(m[1])\n"                                          \
    "if m[2] ~= 'open' then return {} end\n"                                   \
    "local minlease = tonumber(m[3] or lease)\n"                               \
    "if lease < minlease or not m[3] then\n"                                   \
    "  minlease = lease\n"                                                     \
    "  redis.call('HSET', meta, 'minlease', lease)\n"                          \
    "end\n"                                                                    \
    "local due = redis.call('ZRANGEBYSCORE', dk, '-inf', now, 'LIMIT', 0, "    \
    "256)\n"                                                                   \
    "for _, mem in ipairs(due) do\n"                                           \
    "  local e = cjson.decode(mem)\n"                                          \
    "  redis.call('XADD', P..':s:'..e.t, '*', 'k', e.k, 'a', e.a, 'm', e.m,\n" \
    "    'd', e.d, 'p', e.p)\n"                                                \
    "  redis.call('ZREM', dk, mem)\n"                                          \
    "end\n"                                                                    \
    "local out = {}\n"                                                         \
    "local function split(task, id, f)\n"                                      \
    "  local xs, ps = chunk_items(f)\n"                                        \
    "  local ks = {}\n"                                                        \
    "  for j, x in ipairs(xs) do ks[j] = task..' '..x end\n"                   \
    "  local dn = redis.call('HMGET', P..':done', unpack(ks))\n"               \
    "  for j = 1, #xs do\n"                                                    \
    "    if not dn[j] then\n"                                                  \
    "      redis.call('XADD', P..':s:'..task, '*', 'k', ks[j], 'a',\n"         \
    "        field(f, 'a'), 'm', field(f, 'm'), 'd', field(f, 'd'), 'p', "     \
    "ps[j],\n"                                                                 \
    "        'l', 1)\n"                                                        \
    "    end\n"                                                                \
    "  end\n"                                                                  \
    "  finish(task, id)\n"                                                     \
    "end\n"                                                                    \
    "local function grant(task, id, dl, f)\n"                                  \
    "  local k = field(f, 'k')\n"                                              \
    "  if redis.call('HEXISTS', P..':done', k) == 1 then\n" /* queued twice (a \
                                                               producer's      \
                                                               resend): the    \
                                                               first one is    \
                                                               done */         \
    "    finish(task, id)\n"                                                   \
    "    return false\n"                                                       \
    "  end\n"                                                                  \
    "  local fence = redis.call('INCR', P..':seq')\n"                          \
    "  redis.call('HSET', fk, task..' '..id, fence..' '..lease)\n"             \
    "  out[#out+1] = {task, id, fence, dl, f}\n"                               \
    "  return true\n"                                                          \
    "end\n" /* new entries (es, from XREADGROUP, counted running): the same as \
               grant for each, in one HMGET, INCRBY and HSET for them all */   \
    "local function grant_new(task, es)\n"                                     \
    "  local ks, hs, n = {}, {}, 0\n"                                          \
    "  for i, e in ipairs(es) do ks[i] = field(e[2], 'k') end\n"               \
    "  local dn = redis.call('HMGET', P..':done', unpack(ks))\n"               \
    "  local fence = redis.call('INCRBY', P..':seq', #es) - #es\n"             \
    "  for i, e in ipairs(es) do\n"                                            \
    "    if dn[i] and not field(e[2], 'n') then\n"                             \
    "      finish(task, e[1])\n"                                               \
    "    else\n"                                                               \
    "      fence = fence + 1 n = n + 1\n"                                      \
    "      hs[#hs+1] = task..' '..e[1] hs[#hs+1] = fence..' '..lease\n"        \
    "      out[#out+1] = {task, e[1], fence, 1, e[2]}\n"                       \
    "    end\n"                                                                \
    "  end\n"                                                                  \
    "  if n > 0 then redis.call('HSET', fk, unpack(hs)) end\n"                 \
    "  return n\n"                                                             \
    "end\n"                                                                    \
    "local tasks = redis.call('HGETALL', P..':tasks')\n"                       \
    "for i = 1, #tasks, 2 do\n"                                                \
    "  if want <= 0 then break end\n"                                          \
    "  local task = tasks[i]\n"                                                \
    "  local cap, rate = string.match(tasks[i+1], '^(%S+) (%S+)$')\n"          \
    "  cap = tonumber(cap) rate = tonumber(rate)\n" /* cap -1: pool items,     \
                                                       for their slots only */ \
    "  if (only == '' and cap >= 0) or only == task then\n"                    \
    "  local s = P..':s:'..task\n"                                             \
    "  local allow, capleft = want, nil\n" /* jobs: bounds new claims; a       \
                                              lost worker's entries are still  \
                                              counted running, so reclaiming   \
                                              them is not bounded by it */     \
    "  if cap > 0 then\n"                                                      \
    "    local running = tonumber(redis.call('HGET', rk, task) or '0')\n"      \
    "    capleft = cap - running\n"                                            \
    "  end\n"                                                                  \
    "  local bk, tokens = P..':bucket:'..task, 0\n"                            \
    "  if rate > 0 then\n"                                                     \
    "    local b = redis.call('HMGET', bk, 'tok', 'ts')\n"                     \
    "    local burst = math.max(1, rate)\n"                                    \
    "    tokens = tonumber(b[1] or burst)\n"                                   \
    "    local ts = tonumber(b[2] or now)\n"                                   \
    "    tokens = math.min(burst, tokens + (now - ts) * rate / 1000)\n"        \
    "    allow = math.min(allow, math.floor(tokens))\n"                        \
    "  end\n"                                                                  \
    "  local got = 0\n"                                                        \
    "  if allow > 0 then\n"                                                    \
    "    local pend = redis.call('XPENDING', s, 'g', 'IDLE', minlease, '-',\n" \
    "      '+', allow + 64)\n"                                                 \
    "    for _, p in ipairs(pend) do\n"                                        \
    "      if allow <= 0 then break end\n"                                     \
    "      local id, idle, dl = p[1], tonumber(p[3]), tonumber(p[4])\n"        \
    "      local fv = redis.call('HGET', fk, task..' '..id)\n"                 \
    "      local l = tonumber(fv and string.match(fv, ' (%d+)$') or '0')\n"    \
    "      if idle >= l then\n"                                                \
    "        local c = redis.call('XCLAIM', s, 'g', me, l, id)\n"              \
    "        if c[1] == nil or c[1] == false then\n" /* the entry was deleted  \
                                                        under the group: say   \
                                                        so, do not hide it */  \
    "          redis.call('XACK', s, 'g', id)\n"                               \
    "          redis.call('HDEL', fk, task..' '..id)\n"                        \
    "          redis.call('HINCRBY', rk, task, -1)\n"                          \
    "          redis.call('HINCRBY', meta, 'lost', 1)\n"                       \
    "        elseif field(c[1][2], 'n') then\n" /* a chunk its worker lost:    \
                                                       each item on its own */ \
    "          split(task, id, c[1][2])\n"                                     \
    "        elseif dl + 1 > maxdel then\n"                                    \
    "          local f = c[1][2]\n"                                            \
    "          local k, a = field(f, 'k'), field(f, 'a')\n"                    \
    "          local rec = cjson.encode({ok = false, kind = 'lost',\n"         \
    "            status = -1, attempt = tonumber(a), reason =\n"               \
    "            'its worker was lost '..dl..' times (max_deliveries '..\n"    \
    "            maxdel..')'})\n"                                              \
    "          terminal(k, 0, a, rec, false)\n"                                \
    "          redis.call('RPUSH', P..':dead', k)\n"                           \
    "          touch(P..':dead')\n"                                            \
    "          redis.call('HINCRBY', meta, 'dead', 1)\n"                       \
    "          finish(task, id)\n"                                             \
    "        elseif grant(task, id, dl + 1, c[1][2]) then\n"                   \
    "          allow = allow - 1 want = want - 1 got = got + 1\n"              \
    "        end\n"                                                            \
    "      end\n"                                                              \
    "    end\n"                                                                \
    "  end\n"                                                                  \
    "  if capleft then allow = math.min(allow, capleft) end\n"                 \
    "  if allow > 0 then\n"                                                    \
    "    local r = redis.call('XREADGROUP', 'GROUP', 'g', me, 'COUNT', "       \
    "allow,\n"                                                                 \
    "      'STREAMS', s, '>')\n"                                               \
    "    if r and #r[1][2] > 0 then\n"                                         \
    "      redis.call('HINCRBY', rk, task, #r[1][2])\n"                        \
    "      local n = grant_new(task, r[1][2])\n"                               \
    "      want = want - n got = got + n\n"                                    \
    "    end\n"                                                                \
    "  end\n"                                                                  \
    "  if rate > 0 then\n"                                                     \
    "    redis.call('HSET', bk, 'tok', tokens - got, 'ts', now)\n"             \
    "    touch(bk)\n"                                                          \
    "  end\n"                                                                  \
    "  end\n"                                                                  \
    "end\n"                                                                    \
    "if #out > 0 then touch(fk) touch(rk) touch(P..':seq') end\n"              \
    "if redis.call('EXISTS', dk) == 1 then touch(dk) end\n"                    \
    "return out\n"                                                             \
    "end\n"

/*
 * KEYS: meta. ARGV: prefix, consumer, task, id, fence, ok, record, key,
 * and optionally stdout, stderr (kept with the terminal record only).
 * Returns {0} done, {1} retry queued, {2} stale, {3} duplicate, {-1} gone.
 */
#define LUA_COMPLETE_FN                                                        \
    "local function complete(task, id, fence, ok, rec, k, so, se)\n"           \
    "local fv = redis.call('HGET', fk, task..' '..id)\n"                       \
    "if not fv or string.match(fv, '^(%d+)') ~= fence then\n"                  \
    "  local d = redis.call('HGET', P..':done', k)\n"                          \
    "  if d and string.match(d, '^(%d+)') == fence then\n"                     \
    "    redis.call('HINCRBY', meta, 'dup', 1)\n"                              \
    "    return 3\n"                                                           \
    "  end\n"                                                                  \
    "  redis.call('HINCRBY', meta, 'stale', 1)\n"                              \
    "  return 2\n"                                                             \
    "end\n"                                                                    \
    "local e = redis.call('XRANGE', P..':s:'..task, id, id)\n"                 \
    "local f = e[1][2]\n"                                                      \
    "local a, m, d = tonumber(field(f, 'a')), tonumber(field(f, 'm')),\n"      \
    "  tonumber(field(f, 'd'))\n"                                              \
    "if ok or a >= m then\n"                                                   \
    "  terminal(k, fence, a, rec, ok, so, se)\n"                               \
    "  finish(task, id)\n"                                                     \
    "  return 0, f\n"                                                          \
    "end\n"                                                                    \
    "local mem = cjson.encode({t = task, k = k, a = a + 1, m = m, d = d,\n"    \
    "  p = field(f, 'p')})\n"                                                  \
    "redis.call('ZADD', dk, now + d * 2 ^ (a - 1), mem)\n"                     \
    "touch(dk)\n"                                                              \
    "redis.call('HINCRBY', meta, 'retried', 1)\n"                              \
    "finish(task, id)\n"                                                       \
    "return 1, f\n"                                                            \
    "end\n"

/* A worker slot (HASH id -> "FENCE CLAIMED_MS TASK INDEX"): one item done. */
#define LUA_SLOT_FN                                                            \
    "local function slot_done(task, sk, donek, id, good, rok, rfail)\n"        \
    "  local v = redis.call('HGET', sk, id)\n"                                 \
    "  if not v then return end\n"                                             \
    "  local fence, _, k = slotv(v)\n"                                         \
    "  local code, f = complete(task, id, fence, good,\n"                      \
    "    good and rok or rfail, k)\n"                                          \
    "  if code == 0 and good then\n"                                           \
    "    redis.call('SADD', donek, field(f, 'p'))\n"                           \
    "    touch(donek)\n"                                                       \
    "  end\n"                                                                  \
    "  redis.call('HDEL', sk, id)\n"                                           \
    "end\n"                                                                    \
    "local function slot_release(task, id, v, counted)\n"                      \
    "  local fence = string.match(v, '^(%d+)')\n"                              \
    "  local fv = redis.call('HGET', fk, task..' '..id)\n"                     \
    "  if not fv or string.match(fv, '^(%d+)') ~= fence then return end\n"     \
    "  local s = P..':s:'..task\n"                                             \
    "  local l = tonumber(string.match(fv, ' (%d+)$'))\n"                      \
    "  local ml = tonumber(redis.call('HGET', meta, 'minlease') or '0')\n"     \
    "  local p = redis.call('XPENDING', s, 'g', id, id, 1)\n"                  \
    "  if not p[1] then return end\n"                                          \
    "  local dl = tonumber(p[1][4])\n"                                         \
    "  if not counted then dl = math.max(0, dl - 1) end\n"                     \
    "  redis.call('XCLAIM', s, 'g', p[1][2], 0, id, 'IDLE',\n"                 \
    "    math.max(l, ml) * 2 + 1000, 'RETRYCOUNT', dl, 'JUSTID')\n"            \
    "  redis.call('HSET', fk, task..' '..id, '0 0')\n"                         \
    "end\n" LUA_SLOT_OK_FN

/*
 * A batch of items a slot finished well, in a few commands for the whole
 * batch: each item's fence checked and its one terminal record written
 * (HSETNX, per item), then one XACK, XDEL and HDEL for the batch, one
 * entry on the ends stream naming every key (field kb, newline-separated;
 * nobody waits on pool items there) and the counters added once. An item
 * whose slot value predates the attempt and payload fields, or whose
 * fence is not current, takes the item-by-item path (stale, duplicate).
 */
#define LUA_SLOT_OK_FN                                                         \
    "local function oks(task, donek, keys, pays, rec)\n"                       \
    "  redis.call('XADD', P..':ends', '*', 'kb', table.concat(keys, '\\n'),\n" \
    "    'n', #keys, 'r', rec)\n"                                              \
    "  redis.call('HINCRBY', meta, 'ok', #keys)\n"                             \
    "  redis.call('HINCRBY', meta, 'term:'..task, #keys)\n"                    \
    "  redis.call('HINCRBY', meta, 'okt:'..task, #keys)\n"                     \
    "  redis.call('SADD', donek, unpack(pays))\n"                              \
    "  touch(P..':done') touch(P..':ends') touch(donek)\n"                     \
    "end\n"                                                                    \
    "local function slot_done_ok(task, sk, donek, ids, rec)\n"                 \
    "  local s = P..':s:'..task\n"                                             \
    "  local vs = redis.call('HMGET', sk, unpack(ids))\n"                      \
    "  local fks = {}\n"                                                       \
    "  for i, id in ipairs(ids) do fks[i] = task..' '..id end\n"               \
    "  local fvs = redis.call('HMGET', fk, unpack(fks))\n"                     \
    "  local acks, afk, keys, pays = {}, {}, {}, {}\n"                         \
    "  for i, id in ipairs(ids) do\n"                                          \
    "    local v, fv = vs[i], fvs[i]\n"                                        \
    "    if v then\n"                                                          \
    "      local fence, _, k, a, p = slotv(v)\n"                               \
    "      if a and fv and string.match(fv, '^(%d+)') == fence then\n"         \
    "        if redis.call('HSETNX', P..':done', k,\n"                         \
    "          fence..' '..a..' '..rec) == 1 then\n"                           \
    "          keys[#keys+1] = k pays[#pays+1] = p\n"                          \
    "        end\n"                                                            \
    "        acks[#acks+1] = id afk[#afk+1] = fks[i]\n"                        \
    "      else\n"                                                             \
    "        slot_done(task, sk, donek, id, true, rec, '')\n"                  \
    "      end\n"                                                              \
    "    end\n"                                                                \
    "  end\n"                                                                  \
    "  if #acks > 0 then\n"                                                    \
    "    redis.call('XACK', s, 'g', unpack(acks))\n"                           \
    "    redis.call('XDEL', s, unpack(acks))\n"                                \
    "    redis.call('HDEL', fk, unpack(afk))\n"                                \
    "    redis.call('HDEL', sk, unpack(acks))\n"                               \
    "    redis.call('HINCRBY', rk, task, -#acks)\n"                            \
    "    touch(rk)\n"                                                          \
    "  end\n"                                                                  \
    "  if #keys > 0 then oks(task, donek, keys, pays, rec) end\n"              \
    "end\n" LUA_CHUNK_DONE_FN

/*
 * A chunk entry (many items in one stream entry, fields n, x, p) a slot
 * held, done: character j of codes is item j's outcome ('1' done, '2'
 * failed, '3' or none: handed back unstarted). Fenced as one claim: each done
 * item gets its one terminal record (HMGET, then one HSET for those without
 * one), a failed item is retried on its own through the delayed set (or fails
 * for good on its last attempt), the unstarted ones go back as a new
 * chunk, and the entry leaves the stream.
 */
#define LUA_CHUNK_DONE_FN                                                      \
    "local function chunk_done(task, sk, donek, id, v, codes, rok, rfail)\n"   \
    "  redis.call('HDEL', sk, id)\n"                                           \
    "  local fence = string.match(v, '^(%d+)')\n"                              \
    "  local fv = redis.call('HGET', fk, task..' '..id)\n"                     \
    "  local s = P..':s:'..task\n"                                             \
    "  local e = redis.call('XRANGE', s, id, id)\n"                            \
    "  if not fv or string.match(fv, '^(%d+)') ~= fence or not e[1] then\n"    \
    "    redis.call('HINCRBY', meta, 'stale', 1)\n"                            \
    "    return\n"                                                             \
    "  end\n"                                                                  \
    "  local f = e[1][2]\n"                                                    \
    "  local a, m, d = tonumber(field(f, 'a')), tonumber(field(f, 'm')),\n"    \
    "    tonumber(field(f, 'd'))\n"                                            \
    "  local xs, ps = chunk_items(f)\n"                                        \
    "  local ks, kp, bx, bp = {}, {}, {}, {}\n"                                \
    "  local pre = task..' '\n"                                                \
    "  for j = 1, #xs do\n"                                                    \
    "    local c = string.sub(codes, j, j)\n"                                  \
    "    if c == '1' then ks[#ks+1] = pre..xs[j] kp[#kp+1] = ps[j]\n"          \
    "    elseif c ~= '2' then bx[#bx+1] = xs[j] bp[#bp+1] = ps[j]\n"           \
    "    elseif a >= m then terminal(pre..xs[j], fence, a, rfail, false)\n"    \
    "    else\n"                                                               \
    "      redis.call('ZADD', dk, now + d * 2 ^ (a - 1), cjson.encode({t =\n"  \
    "        task, k = pre..xs[j], a = a + 1, m = m, d = d, p = ps[j]}))\n"    \
    "      touch(dk)\n"                                                        \
    "      redis.call('HINCRBY', meta, 'retried', 1)\n"                        \
    "    end\n"                                                                \
    "  end\n"                                                                  \
    "  if #ks > 0 then\n"                                                      \
    "    local dn = redis.call('HMGET', P..':done', unpack(ks))\n"             \
    "    local hs, nk, np, val = {}, {}, {}, fence..' '..a..' '..rok\n"        \
    "    for j, k in ipairs(ks) do\n"                                          \
    "      if not dn[j] then\n"                                                \
    "        hs[#hs+1] = k hs[#hs+1] = val\n"                                  \
    "        nk[#nk+1] = k np[#np+1] = kp[j]\n"                                \
    "      end\n"                                                              \
    "    end\n"                                                                \
    "    if #nk > 0 then\n"                                                    \
    "      redis.call('HSET', P..':done', unpack(hs))\n"                       \
    "      oks(task, donek, nk, np, rok)\n"                                    \
    "    end\n"                                                                \
    "  end\n"                                                                  \
    "  if #bx > 0 then\n"                                                      \
    "    redis.call('XADD', s, '*', 'k', task..' '..bx[1], 'a', a, 'm', m,\n"  \
    "      'd', d, 'n', #bx, 'x', table.concat(bx, ' '), 'p', "                \
    "chunk_body(bp))\n"                                                        \
    "  end\n"                                                                  \
    "  finish(task, id)\n"                                                     \
    "end\n"

#endif
