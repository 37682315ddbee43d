/* SPDX-License-Identifier: MIT */
/*
 * wq_pool: pool mode on the work queue (docs/work-queue.md, "Pool mode"):
 * a worker slot's `next` (complete a batch, claim the next one, in one
 * script), the runner's scripts for a worker's end, lease renewal and
 * per-item timeouts, and the tallies that status and the summary read.
 * The protocol itself (claims, fences, terminal records) is wq.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wq_int.h"
#include "wq_lua.h"

/*
 * Pool mode's `next` for a worker slot (the consumer). KEYS: meta. ARGV:
 * prefix, consumer, task, mark, want, lease, slot key, done key, record
 * ok, record failed, then for mark L the finished items as one string
 * "ID CODE ID CODE ..." (CODE 1 done, 2 failed, 3 handed back unstarted;
 * a chunk's as "ID#* CODES", see fins_text()).
 * mark 1 (or 2) completes every item the slot holds as a success (a
 * failure), 0 hands them out again (a retry after a lost reply). Then up
 * to want items are claimed for the slot. Returns {1, key, item, fence}, {0}
 * when none is left (or the run is over), {2} when the caller should wait, {-1}
 * gone.
 */
static const char pool_next_lua[] =
    LUA_COMMON LUA_COMPLETE_FN LUA_CLAIM_FN LUA_SLOT_FN
    "local me, task, mark = ARGV[2], ARGV[3], ARGV[4]\n"
    "local want, lease = tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "local sk, donek, rok, rfail = ARGV[7], ARGV[8], ARGV[9], ARGV[10]\n"
    "local s, Z = P..':s:'..task, string.char(0)\n"
    /* a chunk's slot value ends in NUL and how many of its items it took */
    "local function took(v)\n"
    "  local _, _, _, _, p = slotv(v)\n"
    "  if p and string.sub(p, 1, 1) == Z then return tonumber(string.sub(p, "
    "2)) end\n"
    "end\n"
    /*
     * The runner stages items on two lists (stage.x: indices, stage.p:
     * "LEN:ITEM"), pushed together. One entry of up to n of them: a
     * single item's own entry, or a chunk (fields n, x, p).
     */
    "local function stage(task, n)\n"
    "  local xk, pk = P..':stage.x:'..task, P..':stage.p:'..task\n"
    "  if redis.call('HGET', meta, 'state') ~= 'open' then return false end\n"
    "  local xs = redis.call('LPOP', xk, n)\n"
    "  if not xs then return false end\n"
    "  local ps = redis.call('LPOP', pk, #xs)\n"
    "  local mad = redis.call('HMGET', meta, 'm:'..task, 'd:'..task)\n"
    "  if #xs == 1 then\n"
    "    redis.call('XADD', s, '*', 'k', task..' '..xs[1], 'a', 1, 'm',\n"
    "      mad[1], 'd', mad[2], 'p', string.match(ps[1], '^%d+:(.*)$'))\n"
    "  else\n"
    "    redis.call('XADD', s, '*', 'k', task..' '..xs[1], 'a', 1, 'm',\n"
    "      mad[1], 'd', mad[2], 'n', #xs, 'x', table.concat(xs, ' '), 'p',\n"
    "      table.concat(ps))\n"
    "  end\n"
    "  return true\n"
    "end\n"
    "if mark == '1' or mark == '2' then\n"
    "  for _, id in ipairs(redis.call('HKEYS', sk)) do\n"
    "    local v = redis.call('HGET', sk, id)\n"
    "    local n = took(v)\n"
    "    if n then\n"
    "      chunk_done(task, sk, donek, id, v, string.rep(mark, n), rok, "
    "rfail)\n"
    "    else\n"
    "      slot_done(task, sk, donek, id, mark == '1', rok, rfail)\n"
    "    end\n"
    "  end\n"
    "elseif mark == 'L' then\n"
    "  local oks, chunks = {}, {}\n"
    "  for id, c in string.gmatch(ARGV[11] or '', '(%S+) (%S+)') do\n"
    "    local eid = string.match(id, '^(.-)#%*$')\n"
    "    if eid then\n"
    "      chunks[eid] = c\n"
    "    elseif c == '1' then\n"
    "      oks[#oks+1] = id\n"
    "    elseif c == '3' then\n"
    "      local v = redis.call('HGET', sk, id)\n"
    "      if v then slot_release(task, id, v, false) end\n"
    "      redis.call('HDEL', sk, id)\n"
    "    else\n"
    "      slot_done(task, sk, donek, id, false, rok, rfail)\n"
    "    end\n"
    "  end\n"
    "  for eid, codes in pairs(chunks) do\n"
    "    local v = redis.call('HGET', sk, eid)\n"
    "    if v and took(v) then\n"
    "      chunk_done(task, sk, donek, eid, v, codes, rok, rfail)\n"
    "    end\n"
    "  end\n"
    "  if #oks > 0 then slot_done_ok(task, sk, donek, oks, rok) end\n"
    "end\n"
    /* what the slot still holds: claimed by a call whose reply was lost */
    "local out, have = {}, 0\n"
    "local held = redis.call('HGETALL', sk)\n"
    "for i = 1, #held, 2 do\n"
    "  local id = held[i]\n"
    "  local fence, _, k = slotv(held[i+1])\n"
    "  local fv = redis.call('HGET', fk, task..' '..id)\n"
    "  local e = redis.call('XRANGE', s, id, id)\n"
    "  if e[1] and fv and string.match(fv, '^(%d+)') == fence then\n"
    "    local f, n = e[1][2], took(held[i+1])\n"
    "    if n then\n"
    "      out[#out+1] = {id, k, field(f, 'p'), field(f, 'x'), n}\n"
    "    else\n"
    "      out[#out+1] = {id, k, field(f, 'p')}\n"
    "    end\n"
    "    have = have + (n or 1)\n"
    "  else\n"
    "    redis.call('HDEL', sk, id)\n"
    "  end\n"
    "end\n"
    "local b = tonumber(redis.call('HGET', meta, 'batch:'..task) or '1')\n"
    "if want > b then want = b end\n"
    "local rem, hs, staged = want - have, {}, false\n"
    /* entries already on the stream first (retries, items handed back,
       a lost worker's), one at a time; then one entry made of the next
       items the runner staged, as many as this slot wants */
    "while rem > 0 do\n"
    "  local got = claim(me, 1, lease, task)\n"
    "  if #got == 0 then\n"
    "    if staged then break end\n"
    "    staged = true\n"
    "    if not stage(task, rem) then break end\n"
    "  end\n"
    /* the slot keeps each item's attempt and payload: completing it
       well then needs no read of its stream entry; a chunk's slot value
       says how many of its items this slot took (the rest go back) */
    "  for _, g in ipairs(got) do\n"
    "    local f = g[5]\n"
    "    local k, p, a = field(f, 'k'), field(f, 'p'), field(f, 'a')\n"
    "    local n = tonumber(field(f, 'n') or '0')\n"
    /* an entry a worker was lost on (delivered before, or split from
       such a chunk) goes alone, so a poison item fails by itself: with
       others held already it goes back, uncounted, for the next claim */
    "    local lone = g[4] > 1 or field(f, 'l')\n"
    "    if lone and #out > 0 then\n"
    "      slot_release(task, g[2], g[3]..' 0 -', false)\n"
    "      rem = 0\n"
    "      break\n"
    "    end\n"
    "    if lone then rem = 1 end\n"
    "    hs[#hs+1] = g[2]\n"
    "    if n > 0 then\n"
    "      local t = math.max(1, math.min(n, rem))\n"
    "      rem = rem - t\n"
    "      hs[#hs+1] = g[3]..' '..now..' '..k..'\\t'..a..'\\t'..Z..t\n"
    "      out[#out+1] = {g[2], k, p, field(f, 'x'), t}\n"
    "    else\n"
    "      rem = rem - 1\n"
    "      hs[#hs+1] = g[3]..' '..now..' '..k..'\\t'..a..'\\t'..p\n"
    "      out[#out+1] = {g[2], k, p}\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if #hs > 0 then redis.call('HSET', sk, unpack(hs)) touch(sk) end\n"
    /* what it finished may be what another slot waits for */
    "if mark ~= '0' then wake(task) end\n"
    "if #out > 0 then return {1, out} end\n"
    "local m = redis.call('HMGET', meta, 'state', 'fed:'..task, "
    "'term:'..task)\n"
    "if m[1] ~= 'open' then return {0} end\n"
    "if m[2] and tonumber(m[3] or '0') >= tonumber(m[2]) then return {0} end\n"
    /* the caller waits on its wake list: it is in the waiting set, so a
       token comes for it when items are queued, come back or all are
       done */
    "redis.call('SADD', P..':waiting:'..task, me)\n"
    "touch(P..':waiting:'..task)\n"
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
    "local p = #held == 2 and select(5, slotv(held[2])) or nil\n"
    "if #held == 2 and ok == '1' and string.sub(p or '', 1, 1) ~= "
    "string.char(0) then\n"
    /* one item held by a worker that exited 0: the one it was on, done
       (a chunk goes back: which of its items were done is not known) */
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
    "wake(task)\n"
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
    "    local fence, t0, k = slotv(held[j+1])\n"
    "    if now - tonumber(t0) >= tmo then\n"
    "      complete(task, id, fence, false, cjson.encode({ok = false,\n"
    "        status = -1, kind = 'timeout', worker = c, reason =\n"
    "        'timed out after '..(tmo / 1000)..'s'}), k)\n"
    "      redis.call('HDEL', sk, id)\n"
    "      hit = true\n"
    "    end\n"
    "  end\n"
    "  if hit then out[#out+1] = c wake(task) end\n"
    "end\n"
    "return out\n";

const char *prun__wq_script(enum prun__wq_script which)
{
    switch (which) {
    case PRUN__WQ_CREATE:
        return prun__wq_create_script();
    case PRUN__WQ_POOL_END:
        return pool_end_lua;
    case PRUN__WQ_POOL_RENEW:
        return pool_renew_lua;
    case PRUN__WQ_POOL_TIMEOUT:
        return pool_timeout_lua;
    }
    return "return {0}";
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

/* Fills it; takes key and item (malloc'd, either may be NULL). */
static int pool_item(
    struct prun_wq_pool_item *it, const char *id, char *key, char *item)
{
    memset(it, 0, sizeof(*it));
    snprintf(it->id, sizeof(it->id), "%s", id);
    it->key = key;
    it->item = item;
    if (key == NULL || item == NULL) {
        prun__wq_pool_item_clear(it);
        return -1;
    }
    return 0;
}

/*
 * A chunk entry of the reply, {id, key, payloads, indices, took}: its
 * first `took` items, each as "ID#J" (J from 1), key "TASK INDEX" and its
 * payload (payloads are "LEN:ITEM" one after the other).
 */
static void unchunk(const char *task, const redisReply *e,
    struct prun_wq_pool_item *out, size_t max, size_t *n)
{
    const char *x = e->element[3]->str, *p = e->element[2]->str;
    const char *pend = p + e->element[2]->len;
    long long took = prun__wq_int_of(e->element[4]);
    char id[48], key[300];

    if (e->element[2]->type != REDIS_REPLY_STRING ||
        e->element[3]->type != REDIS_REPLY_STRING)
        return;
    for (long long j = 1; j <= took && *n < max && *x != '\0'; j++) {
        char *end, *item;
        unsigned long long index = strtoull(x, &end, 10);
        unsigned long long len = strtoull(p, (char **)&p, 10);

        if (end == x || p >= pend || *p != ':' ||
            len > (unsigned long long)(pend - p - 1))
            return;
        p++;
        item = malloc(len + 1);
        if (item != NULL) {
            memcpy(item, p, len);
            item[len] = '\0';
        }
        p += len;
        x = end + strspn(end, " ");
        snprintf(id, sizeof(id), "%s#%lld", e->element[0]->str, j);
        snprintf(key, sizeof(key), "%s %llu", task, index);
        if (pool_item(&out[*n], id, strdup(key), item) == 0)
            (*n)++;
    }
}

/*
 * The finished items as the script reads them: "ID CODE" for an item of
 * its own entry; for a chunk's items (ids "ID#J", handed out in order)
 * one "ID#* CODES", CODES the J-th item's code at place J ('3', handed
 * back, for a place not listed). Returns -1 if buf is too small.
 */
static int fins_text(const struct prun_wq_pool_req *rq, char *buf, size_t size)
{
    char grp[48] = "";
    size_t used = 0, have = 0, i;

    buf[0] = '\0';
    for (i = 0; i < rq->nfin; i++) {
        const char *id = rq->fin[i].id, *hash = strchr(id, '#');
        char code = rq->fin[i].ok == 1 ? '1' : rq->fin[i].ok == 3 ? '3' : '2';
        size_t j = hash ? (size_t)strtoull(hash + 1, NULL, 10) : 0;
        int m;

        if (hash != NULL && j > 0 && (size_t)(hash - id) < sizeof(grp) &&
            strlen(grp) == (size_t)(hash - id) &&
            strncmp(grp, id, (size_t)(hash - id)) == 0 && j > have) {
            /* the group being written: pad, then this item's code */
            if (used + (j - have) >= size)
                return -1;
            for (; have + 1 < j; have++)
                buf[used++] = '3';
            buf[used++] = code;
            buf[used] = '\0';
            have++;
            continue;
        }
        if (hash != NULL && j > 0 && (size_t)(hash - id) < sizeof(grp)) {
            snprintf(grp, sizeof(grp), "%.*s", (int)(hash - id), id);
            m = snprintf(
                buf + used, size - used, "%s%s#* ", used ? " " : "", grp);
            have = 0;
            if (m < 0 || (size_t)m >= size - used)
                return -1;
            used += (size_t)m;
            i--; /* now appended to the group */
            continue;
        }
        grp[0] = '\0';
        m = snprintf(
            buf + used, size - used, "%s%.47s %c", used ? " " : "", id, code);
        if (m < 0 || (size_t)m >= size - used)
            return -1;
        used += (size_t)m;
    }
    return 0;
}

int prun__wq_pool_next(struct prun_wq *q, const struct prun_wq_pool_req *rq,
    struct prun_wq_pool_item *out, size_t max, size_t *n, struct prun_err *err)
{
    const char *args[12];
    char mark[2] = {rq->mark, '\0'}, want[24], lease[32];
    char fins[PRUN_WQ_POOL_BATCH * 52 + 1];
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
    if (fins_text(rq, fins, sizeof(fins)) < 0)
        return prun__err_set(err, PRUN_EINVAL, "next: ids too long");
    args[k++] = fins;
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

            if (e->type != REDIS_REPLY_ARRAY || e->elements < 3)
                continue;
            if (e->elements >= 5)
                unchunk(rq->task, e, out, max, n);
            else if (pool_item(&out[*n], e->element[0]->str,
                         prun__wq_dup_str(e->element[1]),
                         prun__wq_dup_str(e->element[2])) == 0)
                (*n)++;
        }
        if (*n == 0)
            status = 2;
    }
    freeReplyObject(r);
    if (status == -1)
        return prun__wq_gone(q, err);
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
        return prun__wq_gone(q, err);
    }
    t->fed = r->element[1]->type == REDIS_REPLY_STRING
                 ? prun__wq_int_of(r->element[1])
                 : -1;
    t->term = prun__wq_int_of(r->element[2]);
    t->ok = prun__wq_int_of(r->element[3]);
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
            long long t = prun__wq_hget_int(r, term),
                      ok = prun__wq_hget_int(r, okt);
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
