/* SPDX-License-Identifier: MIT */
/*
 * wq: the work-queue protocol on Redis streams (docs/work-queue.md), part
 * of the coord module (it talks to Redis through coord_int.h).
 *
 * Every state change is one Lua script, so that no other party sees half
 * of it: a claim promotes due retries, reclaims expired leases (with
 * dead-lettering), reads new entries and grants each a fence token; a
 * completion checks the token, writes the one terminal record or queues
 * the retry, and acknowledges and deletes the entry. Scripts run with
 * EVALSHA (loaded again on NOSCRIPT by prun__eval). Nothing here blocks
 * inside Redis: waiting for work is the caller's business.
 *
 * It is not a worker (worker.c runs what is claimed) nor a runner.
 */
#include "wq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord_int.h"

#define KEY_MAX 512

struct prun_wq {
    struct prun_conn *c;
    char rid[128];
    char prefix[200]; /* parallelrun:{RID}:wq */
    char meta[220];
    char me[160];
};

/* Shared Lua helpers, prepended to the scripts that need them. */
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
    "local function terminal(k, fence, a, rec, ok)\n"                          \
    "  if redis.call('HSETNX', P..':done', k, fence..' '..a..' '..rec) == 0\n" \
    "  then return false end\n"                                                \
    "  redis.call('XADD', P..':ends', '*', 'k', k, 'f', fence, 'a', a,\n"      \
    "    'r', rec)\n"                                                          \
    "  redis.call('HINCRBY', meta, ok and 'ok' or 'failed', 1)\n"              \
    "  local tk = string.match(k, '^(.*) ') or ''\n"                           \
    "  redis.call('HINCRBY', meta, 'term:'..tk, 1)\n"                          \
    "  if ok then redis.call('HINCRBY', meta, 'okt:'..tk, 1) end\n"            \
    "  touch(P..':done') touch(P..':ends')\n"                                  \
    "  return true\n"                                                          \
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
 * KEYS: meta. ARGV: prefix, ttl, max_deliveries, job, cwd, sets, host,
 * then name, cap, rate per task. Re-creating keeps counters and entries.
 */
static const char create_lua[] =
    "local P = ARGV[1]\n"
    "local meta = KEYS[1]\n"
    "local ttl = tonumber(ARGV[2])\n"
    "redis.call('HSET', meta, 'ttl', ttl, 'maxdel', ARGV[3], 'state', 'open',\n"
    "  'job', ARGV[4], 'cwd', ARGV[5], 'sets', ARGV[6], 'host', ARGV[7])\n"
    "for _, c in ipairs({'enq', 'ok', 'failed', 'retried', 'stale', 'dup',\n"
    "  'dead', 'lost'}) do redis.call('HSETNX', meta, c, 0) end\n"
    "redis.call('PEXPIRE', meta, ttl)\n"
    "for i = 8, #ARGV, 3 do\n"
    "  local s = P..':s:'..ARGV[i]\n"
    "  redis.call('HSET', P..':tasks', ARGV[i], ARGV[i+1]..' '..ARGV[i+2])\n"
    "  if redis.call('EXISTS', s) == 0 then\n"
    "    redis.call('XGROUP', 'CREATE', s, 'g', '0', 'MKSTREAM')\n"
    "  end\n"
    "  redis.call('PEXPIRE', s, ttl)\n"
    "end\n"
    "redis.call('PEXPIRE', P..':tasks', ttl)\n"
    "return {0}\n";

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
    "end\n"                                                                    \
    "local tasks = redis.call('HGETALL', P..':tasks')\n"                       \
    "for i = 1, #tasks, 2 do\n"                                                \
    "  if want <= 0 then break end\n"                                          \
    "  local task = tasks[i]\n"                                                \
    "  if only == '' or only == task then\n"                                   \
    "  local cap, rate = string.match(tasks[i+1], '^(%S+) (%S+)$')\n"          \
    "  cap = tonumber(cap) rate = tonumber(rate)\n"                            \
    "  local s = P..':s:'..task\n"                                             \
    "  local allow = want\n"                                                   \
    "  if cap > 0 then\n"                                                      \
    "    local running = tonumber(redis.call('HGET', rk, task) or '0')\n"      \
    "    allow = math.min(allow, cap - running)\n"                             \
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
    "  if allow > 0 then\n"                                                    \
    "    local r = redis.call('XREADGROUP', 'GROUP', 'g', me, 'COUNT', "       \
    "allow,\n"                                                                 \
    "      'STREAMS', s, '>')\n"                                               \
    "    if r then\n"                                                          \
    "      for _, e in ipairs(r[1][2]) do\n"                                   \
    "        redis.call('HINCRBY', rk, task, 1)\n"                             \
    "        if grant(task, e[1], 1, e[2]) then\n"                             \
    "          want = want - 1 got = got + 1\n"                                \
    "        end\n"                                                            \
    "      end\n"                                                              \
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

static const char claim_lua[] = LUA_COMMON LUA_CLAIM_FN
    "return claim(ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), '')\n";

/*
 * KEYS: meta. ARGV: prefix, consumer, then task, id, fence per claim.
 * Returns {1 or 0 per claim} (1: still ours, lease renewed).
 */
static const char renew_lua[] =
    LUA_COMMON "local me = ARGV[2]\n"
               "local res = {}\n"
               "for i = 3, #ARGV, 3 do\n"
               "  local task, id, fence = ARGV[i], ARGV[i+1], ARGV[i+2]\n"
               "  local s = P..':s:'..task\n"
               "  local fv = redis.call('HGET', fk, task..' '..id)\n"
               "  local ok = 0\n"
               "  if fv and string.match(fv, '^(%d+)') == fence then\n"
               "    local p = redis.call('XPENDING', s, 'g', id, id, 1)\n"
               "    if p[1] and p[1][2] == me then\n"
               "      redis.call('XCLAIM', s, 'g', me, 0, id, 'JUSTID')\n"
               "      ok = 1\n"
               "    end\n"
               "  end\n"
               "  res[#res+1] = ok\n"
               "end\n"
               "return res\n";

/*
 * KEYS: meta. ARGV: prefix, consumer, task, id, fence, ok, record, key.
 * Returns {0} done, {1} retry queued, {2} stale, {3} duplicate, {-1} gone.
 */
#define LUA_COMPLETE_FN                                                        \
    "local function complete(task, id, fence, ok, rec, k)\n"                   \
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
    "  terminal(k, fence, a, rec, ok)\n"                                       \
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

static const char complete_lua[] = LUA_COMMON LUA_COMPLETE_FN
    "local code = complete(ARGV[3], ARGV[4], ARGV[5], ARGV[6] == '1',\n"
    "  ARGV[7], ARGV[8])\n"
    "return {code}\n";

/*
 * KEYS: meta. ARGV: prefix, consumer, task, id, fence. Owner-checked: the
 * entry becomes claimable at once, its delivery not counted, and the old
 * fence dies. Returns {1} released, {0} not ours.
 */
static const char release_lua[] = LUA_COMMON
    "local me, task, id, fence = ARGV[2], ARGV[3], ARGV[4], ARGV[5]\n"
    "local s = P..':s:'..task\n"
    "local fv = redis.call('HGET', fk, task..' '..id)\n"
    "if not fv or string.match(fv, '^(%d+)') ~= fence then return {0} end\n"
    "local p = redis.call('XPENDING', s, 'g', id, id, 1)\n"
    "if not p[1] or p[1][2] ~= me then return {0} end\n"
    "local minlease = tonumber(redis.call('HGET', meta, 'minlease') or '0')\n"
    "local l = tonumber(string.match(fv, ' (%d+)$'))\n"
    "redis.call('XCLAIM', s, 'g', me, 0, id, 'IDLE',\n"
    "  math.max(l, minlease) * 2 + 1000, 'RETRYCOUNT',\n"
    "  math.max(0, tonumber(p[1][4]) - 1), 'JUSTID')\n"
    "redis.call('HSET', fk, task..' '..id, '0 0')\n"
    "return {1}\n";

/* A worker slot (HASH id -> "FENCE CLAIMED_MS TASK INDEX"): one item done. */
#define LUA_SLOT_FN                                                            \
    "local function slot_done(task, sk, donek, id, good, rok, rfail)\n"        \
    "  local v = redis.call('HGET', sk, id)\n"                                 \
    "  if not v then return end\n"                                             \
    "  local fence, _, k = string.match(v, '^(%d+) (%d+) (.*)$')\n"            \
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
    "end\n"

/*
 * Pool mode's `next` for a worker slot (the consumer). KEYS: meta. ARGV:
 * prefix, consumer, task, mark, lease, slot key, done key, record. mark 1
 * (or 2) completes the slot's current item as a success (a failure), 0
 * hands it out again (a retry after a lost reply). Then one item is
 * claimed for the slot. Returns {1, key, item, fence}, {0} when none is
 * left (or the run is over), {2} when the caller should wait, {-1} gone.
 */
static const char pool_next_lua[] =
    LUA_COMMON LUA_COMPLETE_FN LUA_CLAIM_FN LUA_SLOT_FN
    "local me, task, mark = ARGV[2], ARGV[3], ARGV[4]\n"
    "local want, lease = tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "local sk, donek, rok, rfail = ARGV[7], ARGV[8], ARGV[9], ARGV[10]\n"
    "local s = P..':s:'..task\n"
    "if mark == '1' or mark == '2' then\n"
    "  for _, id in ipairs(redis.call('HKEYS', sk)) do\n"
    "    slot_done(task, sk, donek, id, mark == '1', rok, rfail)\n"
    "  end\n"
    "elseif mark == 'L' then\n"
    "  for i = 11, #ARGV, 2 do\n"
    "    if ARGV[i+1] == '3' then\n"
    "      local v = redis.call('HGET', sk, ARGV[i])\n"
    "      if v then slot_release(task, ARGV[i], v, false) end\n"
    "      redis.call('HDEL', sk, ARGV[i])\n"
    "    else\n"
    "      slot_done(task, sk, donek, ARGV[i], ARGV[i+1] == '1', rok,\n"
    "        rfail)\n"
    "    end\n"
    "  end\n"
    "end\n"
    /* what the slot still holds: claimed by a call whose reply was lost */
    "local out = {}\n"
    "local held = redis.call('HGETALL', sk)\n"
    "for i = 1, #held, 2 do\n"
    "  local id = held[i]\n"
    "  local fence, _, k = string.match(held[i+1], '^(%d+) (%d+) (.*)$')\n"
    "  local fv = redis.call('HGET', fk, task..' '..id)\n"
    "  local e = redis.call('XRANGE', s, id, id)\n"
    "  if e[1] and fv and string.match(fv, '^(%d+)') == fence then\n"
    "    out[#out+1] = {id, k, field(e[1][2], 'p')}\n"
    "  else\n"
    "    redis.call('HDEL', sk, id)\n"
    "  end\n"
    "end\n"
    "local b = tonumber(redis.call('HGET', meta, 'batch:'..task) or '1')\n"
    "if want > b then want = b end\n"
    "if #out < want then\n"
    "  local got = claim(me, want - #out, lease, task)\n"
    "  for _, g in ipairs(got) do\n"
    "    local k = field(g[5], 'k')\n"
    "    redis.call('HSET', sk, g[2], g[3]..' '..now..' '..k)\n"
    "    out[#out+1] = {g[2], k, field(g[5], 'p')}\n"
    "  end\n"
    "  if #got > 0 then touch(sk) end\n"
    "end\n"
    "if #out > 0 then return {1, out} end\n"
    "local m = redis.call('HMGET', meta, 'state', 'fed:'..task, "
    "'term:'..task)\n"
    "if m[1] ~= 'open' then return {0} end\n"
    "if m[2] and tonumber(m[3] or '0') >= tonumber(m[2]) then return {0} end\n"
    "return {2}\n";

/*
 * The runner: pool worker slot consumer of task ended. KEYS: meta. ARGV:
 * prefix, consumer, task, ok, slot key, done key. ok: its current item is
 * done (it exited 0); else it goes back for another worker at once, its
 * delivery counted (an item that keeps killing workers is dead-lettered).
 */
static const char pool_end_lua[] = LUA_COMMON LUA_COMPLETE_FN LUA_SLOT_FN
    "local me, task, ok, sk, donek = ARGV[2], ARGV[3], ARGV[4], ARGV[5],\n"
    "  ARGV[6]\n"
    "local held = redis.call('HGETALL', sk)\n"
    "if #held == 2 and ok == '1' then\n"
    /* one item held by a worker that exited 0: the one it was on, done */
    "  slot_done(task, sk, donek, held[1], true,\n"
    "    '{\"ok\":true,\"kind\":\"exit\",\"reason\":\"its worker exited "
    "0\"}',\n"
    "    '')\n"
    "else\n"
    "  for i = 1, #held, 2 do\n"
    "    slot_release(task, held[i], held[i+1], ok ~= '1')\n"
    "  end\n"
    "end\n"
    "redis.call('DEL', sk)\n"
    "return {1}\n";

/*
 * The runner renews the leases of its live pool workers' items. KEYS:
 * meta. ARGV: prefix, then task, consumer pairs.
 */
static const char pool_renew_lua[] = LUA_COMMON
    "for i = 2, #ARGV, 2 do\n"
    "  local s = P..':s:'..ARGV[i]\n"
    "  local p = redis.call('XPENDING', s, 'g', '-', '+', 256, ARGV[i+1])\n"
    "  for _, e in ipairs(p) do\n"
    "    redis.call('XCLAIM', s, 'g', ARGV[i+1], 0, e[1], 'JUSTID')\n"
    "  end\n"
    "end\n"
    "return {0}\n";

/*
 * The runner: per-item timeouts of pool items. KEYS: meta. ARGV: prefix,
 * then task, consumer, timeout (ms), slot key per live worker. An item
 * held longer than its timeout fails (retried while attempts are left) and
 * leaves the slot. Returns the consumers whose worker must be stopped.
 */
static const char pool_timeout_lua[] = LUA_COMMON LUA_COMPLETE_FN
    "local out = {}\n"
    "for i = 2, #ARGV, 4 do\n"
    "  local task, c, tmo, sk = ARGV[i], ARGV[i+1], tonumber(ARGV[i+2]),\n"
    "    ARGV[i+3]\n"
    "  local held = redis.call('HGETALL', sk)\n"
    "  local hit = false\n"
    "  for j = 1, #held, 2 do\n"
    "    local id = held[j]\n"
    "    local fence, t0, k = string.match(held[j+1], '^(%d+) (%d+) (.*)$')\n"
    "    if now - tonumber(t0) >= tmo then\n"
    "      complete(task, id, fence, false, cjson.encode({ok = false,\n"
    "        status = -1, kind = 'timeout', worker = c, reason =\n"
    "        'timed out after '..(tmo / 1000)..'s'}), k)\n"
    "      redis.call('HDEL', sk, id)\n"
    "      hit = true\n"
    "    end\n"
    "  end\n"
    "  if hit then out[#out+1] = c end\n"
    "end\n"
    "return out\n";

const char *prun__wq_script(enum prun__wq_script which)
{
    switch (which) {
    case PRUN__WQ_CREATE:
        return create_lua;
    case PRUN__WQ_POOL_END:
        return pool_end_lua;
    case PRUN__WQ_POOL_RENEW:
        return pool_renew_lua;
    case PRUN__WQ_POOL_TIMEOUT:
        return pool_timeout_lua;
    }
    return "return {0}";
}

int prun__wq_new(struct prun_conn *c, const char *run_id, const char *consumer,
    struct prun_wq **out, struct prun_err *err)
{
    struct prun_wq *q;

    if (strlen(run_id) >= sizeof(q->rid) || strlen(consumer) >= sizeof(q->me) ||
        strchr(run_id, '}') != NULL)
        return prun__err_set(
            err, PRUN_EINVAL, "work queue: bad run id '%s'", run_id);
    q = calloc(1, sizeof(*q));
    if (q == NULL)
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    q->c = c;
    snprintf(q->rid, sizeof(q->rid), "%s", run_id);
    snprintf(q->prefix, sizeof(q->prefix), "parallelrun:{%s}:wq", run_id);
    snprintf(q->meta, sizeof(q->meta), "%s:meta", q->prefix);
    snprintf(q->me, sizeof(q->me), "%s", consumer);
    *out = q;
    return 0;
}

void prun__wq_free(struct prun_wq *q)
{
    free(q);
}

/* A script's reply {N}: returns N, or PRUN_EREDIS for another shape. */
static int int_reply(struct prun_wq *q, redisReply *r, struct prun_err *err)
{
    long long v;

    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(r);
        return prun__err_set(err, PRUN_EREDIS,
            "Redis at %s: unexpected reply from a work-queue script",
            prun__conn_url(q->c));
    }
    v = r->element[0]->integer;
    freeReplyObject(r);
    return (int)v;
}

static int gone(struct prun_wq *q, struct prun_err *err)
{
    return prun__err_set(err, PRUN_ENOTFOUND,
        "Redis at %s has no work queue for run %s (it ended, or Redis lost "
        "its data)",
        prun__conn_url(q->c), q->rid);
}

int prun__wq_create(
    struct prun_wq *q, const struct prun_wq_run *r, struct prun_err *err)
{
    const char **args;
    char ttl[32], md[16], (*caps)[2][32] = NULL;
    redisReply *rep;
    size_t i, n = 8 + 3 * r->ntasks;
    int rc;

    args = calloc(n, sizeof(*args));
    caps = calloc(r->ntasks ? r->ntasks : 1, sizeof(*caps));
    if (args == NULL || caps == NULL) {
        rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(ttl, sizeof(ttl), "%lld",
        (long long)(r->ttl_ms > 0 ? r->ttl_ms : PRUN_WQ_TTL_MS));
    snprintf(md, sizeof(md), "%u",
        r->max_deliveries ? r->max_deliveries : PRUN_WQ_MAX_DELIVERIES);
    args[0] = q->meta;
    args[1] = q->prefix;
    args[2] = ttl;
    args[3] = md;
    args[4] = r->job ? r->job : "";
    args[5] = r->cwd ? r->cwd : "";
    args[6] = r->sets ? r->sets : "";
    args[7] = r->host ? r->host : "";
    for (i = 0; i < r->ntasks; i++) {
        snprintf(caps[i][0], sizeof(caps[i][0]), "%u", r->tasks[i].cap);
        snprintf(caps[i][1], sizeof(caps[i][1]), "%g", r->tasks[i].rate);
        args[8 + 3 * i] = r->tasks[i].name;
        args[9 + 3 * i] = caps[i][0];
        args[10 + 3 * i] = caps[i][1];
    }
    rc = int_reply(q, prun__eval(q->c, err, create_lua, 1, (int)n, args), err);
    if (rc < 0)
        goto out;
    rep = prun__cmd(q->c, err, "SADD %s %s", PRUN_WQ_RUNS_KEY, q->rid);
    if (rep == NULL) {
        rc = err ? err->code : PRUN_EREDIS;
        goto out;
    }
    freeReplyObject(rep);
    rep = prun__cmd(q->c, err, "PEXPIRE %s %s", PRUN_WQ_RUNS_KEY, ttl);
    if (rep == NULL) {
        rc = err ? err->code : PRUN_EREDIS;
        goto out;
    }
    freeReplyObject(rep);
    rc = 0;
out:
    /* args[] points at the script's arguments; the call above is done. */
    free(args);
    free(caps);
    return rc;
}

int prun__wq_close(struct prun_wq *q, struct prun_err *err)
{
    redisReply *r;

    r = prun__cmd(q->c, err, "SREM %s %s", PRUN_WQ_RUNS_KEY, q->rid);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    freeReplyObject(r);
    r = prun__cmd(q->c, err, "HSET %s state closed", q->meta);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    freeReplyObject(r);
    return 0;
}

int prun__wq_exists(struct prun_wq *q, struct prun_err *err)
{
    redisReply *r = prun__cmd(q->c, err, "EXISTS %s", q->meta);
    int v;

    if (r == NULL)
        return 0;
    v = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return v;
}

int prun__wq_meta(struct prun_wq *q, const char *field, char *buf, size_t n,
    struct prun_err *err)
{
    redisReply *r = prun__cmd(q->c, err, "HGET %s %s", q->meta, field);

    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    snprintf(buf, n, "%.*s", r->type == REDIS_REPLY_STRING ? (int)r->len : 0,
        r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    return 0;
}

int prun__wq_enqueue(struct prun_wq *q, const struct prun_wq_entry *e, size_t n,
    struct prun_err *err)
{
    redisContext *ctx = q->c->ctx;
    char key[KEY_MAX], ma[16], rd[32];
    size_t i, sent = 0;
    int rc = 0;

    for (i = 0; i < n; i++) {
        const char *argv[13];
        size_t lens[13];

        snprintf(key, sizeof(key), "%s:s:%s", q->prefix, e[i].task);
        snprintf(
            ma, sizeof(ma), "%u", e[i].max_attempts ? e[i].max_attempts : 1);
        snprintf(rd, sizeof(rd), "%lld", (long long)e[i].retry_delay_ms);
        argv[0] = "XADD";
        argv[1] = key;
        argv[2] = "*";
        argv[3] = "k";
        argv[4] = e[i].key;
        argv[5] = "a";
        argv[6] = "1";
        argv[7] = "m";
        argv[8] = ma;
        argv[9] = "d";
        argv[10] = rd;
        argv[11] = "p";
        argv[12] = e[i].payload ? e[i].payload : "";
        for (int j = 0; j < 13; j++)
            lens[j] = strlen(argv[j]);
        lens[12] = e[i].payload ? e[i].payload_len : 0;
        if (redisAppendCommandArgv(ctx, 13, argv, lens) != REDIS_OK)
            break;
        sent++;
    }
    if (redisAppendCommand(
            ctx, "HINCRBY %s enq %lld", q->meta, (long long)sent) == REDIS_OK)
        sent++;
    for (i = 0; i < sent; i++) {
        void *reply = NULL;

        if (redisGetReply(ctx, &reply) != REDIS_OK) {
            rc = prun__err_set(err, PRUN_EREDIS, "Redis at %s: %s",
                prun__conn_url(q->c), ctx->errstr);
            break;
        }
        if (((redisReply *)reply)->type == REDIS_REPLY_ERROR && rc == 0)
            rc = prun__err_set(err, PRUN_EREDIS, "Redis at %s: %s",
                prun__conn_url(q->c), ((redisReply *)reply)->str);
        freeReplyObject(reply);
    }
    if (rc == 0 && sent != n + 1)
        rc = prun__err_set(err, PRUN_EREDIS, "Redis at %s: %s",
            prun__conn_url(q->c),
            ctx->errstr[0] ? ctx->errstr : "out of memory");
    return rc;
}

void prun__wq_claim_clear(struct prun__wq_claim *c)
{
    if (c == NULL)
        return;
    free(c->task);
    free(c->id);
    free(c->key);
    free(c->payload);
    memset(c, 0, sizeof(*c));
}

static char *dup_str(const redisReply *r)
{
    char *s;

    if (r == NULL || r->type != REDIS_REPLY_STRING)
        return strdup("");
    s = malloc(r->len + 1);
    if (s != NULL) {
        memcpy(s, r->str, r->len);
        s[r->len] = '\0';
    }
    return s;
}

static long long int_of(const redisReply *r)
{
    if (r == NULL)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoll(r->str, NULL, 10);
    return 0;
}

/* Fills c from {task, id, fence, deliveries, {field, value, ...}}. */
static int fill_claim(
    const redisReply *e, int64_t lease_ms, struct prun__wq_claim *c)
{
    const redisReply *f;
    size_t j;

    memset(c, 0, sizeof(*c));
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 5 ||
        e->element[4]->type != REDIS_REPLY_ARRAY)
        return -1;
    c->task = dup_str(e->element[0]);
    c->id = dup_str(e->element[1]);
    c->fence = (uint64_t)int_of(e->element[2]);
    c->deliveries = (unsigned)int_of(e->element[3]);
    c->lease_ms = lease_ms;
    f = e->element[4];
    for (j = 0; j + 1 < f->elements; j += 2) {
        const char *name = f->element[j]->str;

        if (f->element[j]->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(name, "k") == 0)
            c->key = dup_str(f->element[j + 1]);
        else if (strcmp(name, "a") == 0)
            c->attempt = (unsigned)int_of(f->element[j + 1]);
        else if (strcmp(name, "m") == 0)
            c->max_attempts = (unsigned)int_of(f->element[j + 1]);
        else if (strcmp(name, "p") == 0) {
            c->payload = dup_str(f->element[j + 1]);
            c->payload_len = f->element[j + 1]->len;
        }
    }
    if (c->key == NULL)
        c->key = strdup("");
    if (c->payload == NULL)
        c->payload = strdup("");
    if (!c->task || !c->id || !c->key || !c->payload) {
        prun__wq_claim_clear(c);
        return -1;
    }
    return 0;
}

int prun__wq_claim(struct prun_wq *q, size_t want, int64_t lease_ms,
    struct prun__wq_claim *out, size_t *n, struct prun_err *err)
{
    char w[32], l[32];
    const char *args[5] = {q->meta, q->prefix, q->me, w, l};
    redisReply *r;
    size_t i;
    int rc = 0;

    *n = 0;
    if (want == 0)
        return 0;
    snprintf(w, sizeof(w), "%zu", want);
    snprintf(l, sizeof(l), "%lld", (long long)lease_ms);
    r = prun__eval(q->c, err, claim_lua, 1, 5, args);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return prun__err_set(err, PRUN_EREDIS,
            "Redis at %s: unexpected reply to a claim", prun__conn_url(q->c));
    }
    if (r->elements == 1 && r->element[0]->type == REDIS_REPLY_INTEGER) {
        freeReplyObject(r);
        return gone(q, err);
    }
    for (i = 0; i < r->elements && *n < want; i++) {
        if (fill_claim(r->element[i], lease_ms, &out[*n]) < 0) {
            /* Granted in Redis but unusable here: its lease will lapse. */
            rc = prun__err_set(err, PRUN_ENOMEM, "out of memory");
            continue;
        }
        (*n)++;
    }
    freeReplyObject(r);
    return rc;
}

int prun__wq_renew(struct prun_wq *q, const struct prun__wq_claim *c, size_t n,
    int *lost, struct prun_err *err)
{
    const char **args;
    char(*fences)[24];
    redisReply *r;
    size_t i, done = 0;
    int rc = 0;

    /* At most 60 arguments per script call (prun__eval's limit). */
    args = calloc(62, sizeof(*args));
    fences = calloc(20, sizeof(*fences));
    if (args == NULL || fences == NULL) {
        free(args);
        free(fences);
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    }
    while (done < n && rc == 0) {
        size_t m = n - done < 20 ? n - done : 20;

        args[0] = q->meta;
        args[1] = q->prefix;
        args[2] = q->me;
        for (i = 0; i < m; i++) {
            snprintf(fences[i], sizeof(fences[i]), "%llu",
                (unsigned long long)c[done + i].fence);
            args[3 + 3 * i] = c[done + i].task;
            args[4 + 3 * i] = c[done + i].id;
            args[5 + 3 * i] = fences[i];
        }
        r = prun__eval(q->c, err, renew_lua, 1, (int)(3 + 3 * m), args);
        if (r == NULL) {
            rc = err ? err->code : PRUN_EREDIS;
            break;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
            r->element[0]->type == REDIS_REPLY_INTEGER &&
            r->element[0]->integer == -1) {
            /* The run is gone: nothing is ours any more. */
            for (i = 0; i < m; i++)
                lost[done + i] = 1;
        } else if (r->type != REDIS_REPLY_ARRAY || r->elements != m) {
            rc = prun__err_set(err, PRUN_EREDIS,
                "Redis at %s: unexpected reply to a renewal",
                prun__conn_url(q->c));
        } else {
            for (i = 0; i < m; i++)
                lost[done + i] = int_of(r->element[i]) != 1;
        }
        freeReplyObject(r);
        done += m;
    }
    free(args);
    free(fences);
    return rc;
}

int prun__wq_complete(struct prun_wq *q, const struct prun__wq_claim *c, int ok,
    const char *record, struct prun_err *err)
{
    char fence[24];
    const char *args[9] = {q->meta, q->prefix, q->me, c->task, c->id, fence,
        ok ? "1" : "0", record, c->key};
    int rc;

    snprintf(fence, sizeof(fence), "%llu", (unsigned long long)c->fence);
    rc = int_reply(q, prun__eval(q->c, err, complete_lua, 1, 9, args), err);
    if (rc == -1)
        return gone(q, err);
    return rc;
}

int prun__wq_release(
    struct prun_wq *q, const struct prun__wq_claim *c, struct prun_err *err)
{
    char fence[24];
    const char *args[6] = {q->meta, q->prefix, q->me, c->task, c->id, fence};
    int rc;

    snprintf(fence, sizeof(fence), "%llu", (unsigned long long)c->fence);
    rc = int_reply(q, prun__eval(q->c, err, release_lua, 1, 6, args), err);
    if (rc == -1)
        return gone(q, err);
    return rc < 0 ? rc : 0;
}

void prun__wq_end_clear(struct prun_wq_end *e)
{
    if (e == NULL)
        return;
    free(e->key);
    free(e->record);
    memset(e, 0, sizeof(*e));
}

int prun__wq_read_ends(struct prun_wq *q, const char *after,
    struct prun_wq_end *out, size_t max, struct prun_err *err)
{
    redisReply *r, *entries;
    size_t i, j;
    int n = 0;
    char cnt[24];

    snprintf(cnt, sizeof(cnt), "%zu", max);
    r = prun__cmd(
        q->c, err, "XREAD COUNT %s STREAMS %s:ends %s", cnt, q->prefix, after);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        freeReplyObject(r);
        return 0;
    }
    entries = r->element[0]->element[1];
    for (i = 0; i < entries->elements && (size_t)n < max; i++) {
        const redisReply *e = entries->element[i], *f = e->element[1];
        struct prun_wq_end *o = &out[n];

        memset(o, 0, sizeof(*o));
        snprintf(o->id, sizeof(o->id), "%s", e->element[0]->str);
        for (j = 0; j + 1 < f->elements; j += 2) {
            const char *name = f->element[j]->str;

            if (strcmp(name, "k") == 0)
                o->key = dup_str(f->element[j + 1]);
            else if (strcmp(name, "r") == 0)
                o->record = dup_str(f->element[j + 1]);
            else if (strcmp(name, "f") == 0)
                o->fence = (uint64_t)int_of(f->element[j + 1]);
            else if (strcmp(name, "a") == 0)
                o->attempt = (unsigned)int_of(f->element[j + 1]);
        }
        if (o->key == NULL || o->record == NULL) {
            prun__wq_end_clear(o);
            continue;
        }
        n++;
    }
    freeReplyObject(r);
    return n;
}

static long long hget_int(const redisReply *r, const char *name)
{
    size_t i;

    for (i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (strcmp(r->element[i]->str, name) == 0)
            return int_of(r->element[i + 1]);
    return 0;
}

int prun__wq_stats(
    struct prun_wq *q, struct prun__wq_stats *st, struct prun_err *err)
{
    redisReply *r;
    size_t i;

    memset(st, 0, sizeof(*st));
    r = prun__cmd(q->c, err, "HGETALL %s", q->meta);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        freeReplyObject(r);
        return gone(q, err);
    }
    st->enqueued = hget_int(r, "enq");
    st->ok = hget_int(r, "ok");
    st->failed = hget_int(r, "failed");
    st->retried = hget_int(r, "retried");
    st->stale = hget_int(r, "stale");
    st->dup = hget_int(r, "dup");
    st->dead = hget_int(r, "dead");
    st->lost = hget_int(r, "lost");
    freeReplyObject(r);
    r = prun__cmd(q->c, err, "HLEN %s:done", q->prefix);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    st->done = int_of(r);
    freeReplyObject(r);
    r = prun__cmd(q->c, err, "ZCARD %s:delay", q->prefix);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    st->delayed = int_of(r);
    freeReplyObject(r);
    r = prun__cmd(q->c, err, "HKEYS %s:tasks", q->prefix);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *g = prun__cmd(
            q->c, NULL, "XINFO GROUPS %s:s:%s", q->prefix, r->element[i]->str);
        redisReply *len = prun__cmd(
            q->c, NULL, "XLEN %s:s:%s", q->prefix, r->element[i]->str);
        long long pending = 0;

        if (g != NULL && g->type == REDIS_REPLY_ARRAY && g->elements > 0)
            pending = hget_int(g->element[0], "pending");
        st->pending += pending;
        st->backlog += int_of(len) - pending;
        if (g)
            freeReplyObject(g);
        if (len)
            freeReplyObject(len);
    }
    freeReplyObject(r);
    return 0;
}

int prun__wq_record(
    struct prun_wq *q, const char *key, char **out, struct prun_err *err)
{
    redisReply *r = prun__cmd(q->c, err, "HGET %s:done %s", q->prefix, key);

    *out = NULL;
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    if (r->type == REDIS_REPLY_STRING)
        *out = dup_str(r);
    freeReplyObject(r);
    return 0;
}

/* ---- Workers and the runs they serve ------------------------------------ */

#define WORKERS_KEY "parallelrun:wq:workers"

int prun__wq_runs(
    struct prun_conn *c, char ***ids, size_t *n, struct prun_err *err)
{
    redisReply *r = prun__cmd(c, err, "SMEMBERS %s", PRUN_WQ_RUNS_KEY);
    char **v;
    size_t i;

    *ids = NULL;
    *n = 0;
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        freeReplyObject(r);
        return 0;
    }
    v = calloc(r->elements, sizeof(*v));
    if (v == NULL) {
        freeReplyObject(r);
        return prun__err_set(err, PRUN_ENOMEM, "out of memory");
    }
    for (i = 0; i < r->elements; i++)
        v[i] = dup_str(r->element[i]);
    *ids = v;
    *n = r->elements;
    freeReplyObject(r);
    return 0;
}

void prun__wq_strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

int prun__wq_worker_beat(struct prun_conn *c, const struct prun_wq_worker *w,
    int64_t ttl_ms, struct prun_err *err)
{
    char key[300], pid[24], slots[16], running[16], beat[24], ttl[24];
    redisContext *ctx = c->ctx;
    int i, rc = 0;

    snprintf(key, sizeof(key), "parallelrun:wq:worker:%s", w->id);
    snprintf(pid, sizeof(pid), "%ld", w->pid);
    snprintf(slots, sizeof(slots), "%u", w->slots);
    snprintf(running, sizeof(running), "%u", w->running);
    snprintf(beat, sizeof(beat), "%lld", (long long)w->beat_ms);
    snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
    redisAppendCommand(ctx,
        "HSET %s host %s pid %s slots %s running %s beat %s run %s", key,
        w->host, pid, slots, running, beat, w->run);
    redisAppendCommand(ctx, "PEXPIRE %s %s", key, ttl);
    redisAppendCommand(ctx, "ZADD %s %s %s", WORKERS_KEY, beat, w->id);
    redisAppendCommand(ctx, "PEXPIRE %s 86400000", WORKERS_KEY);
    for (i = 0; i < 4; i++) {
        void *reply = NULL;

        if (redisGetReply(ctx, &reply) != REDIS_OK) {
            return prun__err_set(err, PRUN_EREDIS, "Redis at %s: %s",
                prun__conn_url(c), ctx->errstr);
        }
        if (((redisReply *)reply)->type == REDIS_REPLY_ERROR && rc == 0)
            rc = prun__err_set(err, PRUN_EREDIS, "Redis at %s: %s",
                prun__conn_url(c), ((redisReply *)reply)->str);
        freeReplyObject(reply);
    }
    return rc;
}

int prun__wq_worker_gone(
    struct prun_conn *c, const char *id, struct prun_err *err)
{
    redisReply *r = prun__cmd(c, err, "DEL parallelrun:wq:worker:%s", id);

    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    freeReplyObject(r);
    r = prun__cmd(c, err, "ZREM %s %s", WORKERS_KEY, id);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    freeReplyObject(r);
    return 0;
}

static void hget_str(const redisReply *r, const char *name, char *buf, size_t n)
{
    size_t i;

    buf[0] = '\0';
    for (i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (strcmp(r->element[i]->str, name) == 0 &&
            r->element[i + 1]->type == REDIS_REPLY_STRING)
            snprintf(buf, n, "%s", r->element[i + 1]->str);
}

int prun__wq_workers(struct prun_conn *c, struct prun_wq_worker **out,
    size_t *n, struct prun_err *err)
{
    redisReply *r = prun__cmd(c, err, "ZRANGE %s 0 -1", WORKERS_KEY);
    struct prun_wq_worker *v = NULL;
    size_t i, k = 0;

    *out = NULL;
    *n = 0;
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0)
        v = calloc(r->elements, sizeof(*v));
    for (i = 0; v && i < r->elements; i++) {
        const char *id = r->element[i]->str;
        redisReply *h =
            prun__cmd(c, err, "HGETALL parallelrun:wq:worker:%s", id);

        if (h == NULL)
            break;
        if (h->type != REDIS_REPLY_ARRAY || h->elements == 0) {
            /* Its heartbeat expired: it is gone. */
            redisReply *z = prun__cmd(c, NULL, "ZREM %s %s", WORKERS_KEY, id);
            if (z)
                freeReplyObject(z);
        } else {
            struct prun_wq_worker *w = &v[k++];

            snprintf(w->id, sizeof(w->id), "%s", id);
            hget_str(h, "host", w->host, sizeof(w->host));
            hget_str(h, "run", w->run, sizeof(w->run));
            w->pid = (long)hget_int(h, "pid");
            w->slots = (unsigned)hget_int(h, "slots");
            w->running = (unsigned)hget_int(h, "running");
            w->beat_ms = hget_int(h, "beat");
        }
        freeReplyObject(h);
    }
    freeReplyObject(r);
    *out = v;
    *n = k;
    return 0;
}

/* ---- Pool mode ---------------------------------------------------------- */

void prun__wq_pool_item_clear(struct prun_wq_pool_item *it)
{
    if (it == NULL)
        return;
    free(it->key);
    free(it->item);
    memset(it, 0, sizeof(*it));
}

int prun__wq_pool_next(struct prun_wq *q, const struct prun_wq_pool_req *rq,
    struct prun_wq_pool_item *out, size_t max, size_t *n, struct prun_err *err)
{
    const char *args[11 + 2 * PRUN_WQ_POOL_BATCH];
    char mark[2] = {rq->mark, '\0'}, want[24], lease[32];
    redisReply *r, *list;
    long long status;
    size_t i, k = 0;

    *n = 0;
    if (rq->nfin > PRUN_WQ_POOL_BATCH)
        return prun__err_set(err, PRUN_EINVAL, "next: too many completions");
    snprintf(want, sizeof(want), "%zu", rq->want);
    snprintf(lease, sizeof(lease), "%lld", (long long)rq->lease_ms);
    args[k++] = q->meta;
    args[k++] = q->prefix;
    args[k++] = q->me;
    args[k++] = rq->task;
    args[k++] = mark;
    args[k++] = want;
    args[k++] = lease;
    args[k++] = rq->slot_key;
    args[k++] = rq->done_key;
    args[k++] = rq->rec_ok;
    args[k++] = rq->rec_fail;
    for (i = 0; i < rq->nfin; i++) {
        args[k++] = rq->fin[i].id;
        args[k++] = rq->fin[i].ok == 1 ? "1" : rq->fin[i].ok == 3 ? "3" : "2";
    }
    r = prun__eval(q->c, err, pool_next_lua, 1, (int)k, args);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(r);
        return prun__err_set(err, PRUN_EREDIS,
            "Redis at %s: unexpected reply to next", prun__conn_url(q->c));
    }
    status = r->element[0]->integer;
    if (status == 1 && r->elements >= 2 &&
        r->element[1]->type == REDIS_REPLY_ARRAY) {
        list = r->element[1];
        for (i = 0; i < list->elements && *n < max; i++) {
            const redisReply *e = list->element[i];
            struct prun_wq_pool_item *it = &out[*n];

            if (e->type != REDIS_REPLY_ARRAY || e->elements < 3)
                continue;
            memset(it, 0, sizeof(*it));
            snprintf(it->id, sizeof(it->id), "%s", e->element[0]->str);
            it->key = dup_str(e->element[1]);
            it->item = dup_str(e->element[2]);
            if (it->key == NULL || it->item == NULL) {
                prun__wq_pool_item_clear(it);
                continue;
            }
            (*n)++;
        }
        if (*n == 0)
            status = 2;
    }
    freeReplyObject(r);
    if (status == -1)
        return gone(q, err);
    return (int)status;
}

int prun__wq_pool_tally(struct prun_wq *q, const char *task,
    struct prun_wq_tally *t, struct prun_err *err)
{
    char fed[300], term[300], ok[300], pat[300], cursor[32] = "0";
    redisReply *r;

    memset(t, 0, sizeof(*t));
    snprintf(fed, sizeof(fed), "fed:%s", task);
    snprintf(term, sizeof(term), "term:%s", task);
    snprintf(ok, sizeof(ok), "okt:%s", task);
    r = prun__cmd(q->c, err, "HMGET %s state %s %s %s", q->meta, fed, term, ok);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return gone(q, err);
    }
    t->fed =
        r->element[1]->type == REDIS_REPLY_STRING ? int_of(r->element[1]) : -1;
    t->term = int_of(r->element[2]);
    t->ok = int_of(r->element[3]);
    freeReplyObject(r);
    if (t->term == t->ok)
        return 0;
    snprintf(pat, sizeof(pat), "%s *", task);
    do {
        size_t i;

        r = prun__cmd(q->c, err, "HSCAN %s:done %s MATCH %s COUNT 1000",
            q->prefix, cursor, pat);
        if (r == NULL)
            return err ? err->code : PRUN_EREDIS;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            freeReplyObject(r);
            break;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (i = 0; i + 1 < r->element[1]->elements && t->nfail < 20; i += 2) {
            const char *k = r->element[1]->element[i]->str;
            const char *v = r->element[1]->element[i + 1]->str;
            const char *why = strstr(v, "\"reason\":\"");
            const char *sp = strrchr(k, ' ');

            if (strstr(v, "\"ok\":false") == NULL)
                continue;
            t->fail[t->nfail].index = sp ? strtoull(sp + 1, NULL, 10) : 0;
            if (why != NULL)
                snprintf(t->fail[t->nfail].reason,
                    sizeof(t->fail[t->nfail].reason), "%.*s",
                    (int)strcspn(why + 10, "\""), why + 10);
            else
                snprintf(t->fail[t->nfail].reason,
                    sizeof(t->fail[t->nfail].reason), "failed");
            t->nfail++;
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0 && t->nfail < 20);
    return 0;
}

int prun__wq_pool_status(struct prun_conn *c, const char *rid,
    struct prun_buf *out, struct prun_err *err)
{
    redisReply *r;
    size_t i;

    r = prun__cmd(c, err, "HGETALL parallelrun:{%s}:wq:meta", rid);
    if (r == NULL)
        return err ? err->code : PRUN_EREDIS;
    for (i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        const char *f = r->element[i]->str, *task;
        char fed[300], term[300], okt[300];

        if (strncmp(f, "batch:", 6) != 0)
            continue;
        task = f + 6;
        snprintf(fed, sizeof(fed), "fed:%s", task);
        snprintf(term, sizeof(term), "term:%s", task);
        snprintf(okt, sizeof(okt), "okt:%s", task);
        {
            long long t = hget_int(r, term), ok = hget_int(r, okt);
            char n[32] = "?";
            size_t j;

            for (j = 0; j + 1 < r->elements; j += 2)
                if (strcmp(r->element[j]->str, fed) == 0)
                    snprintf(n, sizeof(n), "%s", r->element[j + 1]->str);
            prun__buf_printf(out,
                "  %s: items: %s queued, %lld done, %lld failed\n", task, n, ok,
                t - ok);
        }
    }
    freeReplyObject(r);
    return 0;
}
