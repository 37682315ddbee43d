/* SPDX-License-Identifier: MIT */
/*
 * coord_url: Redis addresses. A redis:// or unix:// URL parsed into a
 * struct prun_redis_addr (user and password percent-decoded, IPv6 hosts in
 * brackets, a database number), formatted back without its password, and
 * redacted for messages. Nothing here connects or includes hiredis: that
 * is coord.c.
 */
#include "coord.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value of a hex digit, or -1. */
static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Percent-decodes len bytes of s into out (n bytes). Returns 0, or -1 when
 * it does not fit or holds a bad escape or a NUL.
 */
static int pct_decode(const char *s, size_t len, char *out, size_t n)
{
    size_t i, o = 0;

    for (i = 0; i < len; i++) {
        int c = (unsigned char)s[i];

        if (c == '%') {
            if (i + 2 >= len || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
                return -1;
            c = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
            i += 2;
            if (c == 0)
                return -1;
        }
        if (o + 1 >= n)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* Percent-encodes s for the user part of a URL. */
static void pct_encode(const char *s, char *out, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (; *s && o + 4 < n; s++) {
        unsigned char c = (unsigned char)*s;

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || strchr("-._~", c) != NULL) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (n > 0)
        out[o < n ? o : n - 1] = '\0';
}

/*
 * The userinfo of url ("user:pass" in redis://user:pass@host): its start
 * and length, or NULL when there is none. It ends at the last '@' before
 * the path, so an '@' in a password needs no escaping.
 */
static const char *userinfo(const char *url, size_t *len)
{
    const char *p, *end, *at = NULL, *q;

    if (strncmp(url, "redis://", 8) == 0)
        p = url + 8;
    else if (strncmp(url, "rediss://", 9) == 0)
        p = url + 9;
    else if (strncmp(url, "unix://", 7) == 0)
        p = url + 7;
    else
        return NULL;
    /* A unix path starts right after "unix://"; userinfo ends with "@/". */
    if (strncmp(url, "unix://", 7) == 0) {
        for (q = p; *q && *q != '?'; q++)
            if (*q == '@' && q[1] == '/')
                at = q;
        if (at == NULL || *p == '/')
            return NULL;
    } else {
        end = p + strcspn(p, "/?#");
        for (q = p; q < end; q++)
            if (*q == '@')
                at = q;
        if (at == NULL)
            return NULL;
    }
    *len = (size_t)(at - p);
    return p;
}

/*
 * Where a password would be in url, for redaction: between the first ':'
 * after "SCHEME://" and the last '@'. Generous on purpose (it also serves
 * URLs that do not parse): hiding too much in a message is harmless.
 */
static const char *password_span(const char *url, size_t *len)
{
    const char *p = url ? strstr(url, "://") : NULL;
    const char *at, *c;

    if (p == NULL)
        return NULL;
    p += 3;
    at = strrchr(p, '@');
    if (at == NULL)
        return NULL;
    c = memchr(p, ':', (size_t)(at - p));
    if (c == NULL || c + 1 >= at)
        return NULL;
    *len = (size_t)(at - c - 1);
    return c + 1;
}

int prun__redis_url_has_password(const char *url)
{
    size_t len;

    return password_span(url, &len) != NULL;
}

void prun__redis_url_redact(const char *url, char *buf, size_t n)
{
    size_t len;
    const char *pw = password_span(url, &len);

    if (n == 0)
        return;
    if (pw == NULL)
        snprintf(buf, n, "%s", url ? url : "");
    else
        snprintf(buf, n, "%.*s***%s", (int)(pw - url), url, pw + len);
}

/* Splits userinfo "user[:pass]" (percent-encoded) into a. */
static int parse_userinfo(const char *u, size_t len, struct prun_redis_addr *a)
{
    const char *c = memchr(u, ':', len);
    size_t ul = c ? (size_t)(c - u) : len;

    if (pct_decode(u, ul, a->user, sizeof(a->user)) < 0)
        return -1;
    if (c != NULL &&
        pct_decode(c + 1, len - ul - 1, a->password, sizeof(a->password)) < 0)
        return -1;
    return 0;
}

/* unix:///path[?db=N]: p is the path (after the userinfo, if any). */
static int parse_unix(const char *p, struct prun_redis_addr *a,
    const char *shown, struct prun_err *err)
{
    const char *q = strchr(p, '?');
    long long v;
    struct prun_err e;

    if (*p != '/' || (q ? (size_t)(q - p) : strlen(p)) >= sizeof(a->path)) {
        memset(a, 0, sizeof(*a));
        return prun__err_set(err, PRUN_EINVAL,
            "invalid Redis URL '%s' (expected unix:///absolute/path)", shown);
    }
    a->is_unix = 1;
    snprintf(a->path, sizeof(a->path), "%.*s",
        (int)(q ? (size_t)(q - p) : strlen(p)), p);
    if (q != NULL) {
        if (strncmp(q, "?db=", 4) != 0 ||
            prun__parse_int(q + 4, 0, 100000, &v, &e) < 0) {
            memset(a, 0, sizeof(*a));
            return prun__err_set(err, PRUN_EINVAL,
                "invalid Redis URL '%s' (expected ?db=N)", shown);
        }
        a->db = (int)v;
    }
    return 0;
}

/*
 * The "host[:port]" of a redis:// URL (hl bytes at p; an IPv6 address in
 * brackets) into a->host and a->port.
 */
static int parse_host(const char *p, size_t hl, struct prun_redis_addr *a,
    const char *shown, struct prun_err *err)
{
    char hostport[300];
    const char *colon;
    long long v;
    struct prun_err e;

    if (hl == 0 || hl >= sizeof(hostport))
        goto no_host;
    memcpy(hostport, p, hl);
    hostport[hl] = '\0';
    colon = strrchr(hostport, ':');
    if (colon != NULL && strchr(hostport, ']') < colon) {
        if (prun__parse_int(colon + 1, 1, 65535, &v, &e) < 0) {
            memset(a, 0, sizeof(*a));
            return prun__err_set(
                err, PRUN_EINVAL, "invalid Redis URL '%s': bad port", shown);
        }
        a->port = (int)v;
        hostport[colon - hostport] = '\0';
    }
    if (hostport[0] == '[') {
        size_t l = strlen(hostport);
        if (hostport[l - 1] == ']') {
            hostport[l - 1] = '\0';
            memmove(hostport, hostport + 1, l - 1);
        }
    }
    if (hostport[0] == '\0' || strlen(hostport) >= sizeof(a->host))
        goto no_host;
    memcpy(a->host, hostport, strlen(hostport) + 1);
    return 0;
no_host:
    memset(a, 0, sizeof(*a));
    return prun__err_set(
        err, PRUN_EINVAL, "invalid Redis URL '%s': no host", shown);
}

int prun__redis_url_parse(
    const char *url, struct prun_redis_addr *a, struct prun_err *err)
{
    const char *p, *slash, *q, *ui;
    size_t uilen = 0;
    long long v;
    struct prun_err e;
    char shown[320];
    int rc;

    memset(a, 0, sizeof(*a));
    a->port = 6379;
    /* Messages show the URL without its password. */
    prun__redis_url_redact(url, shown, sizeof(shown));
    ui = userinfo(url, &uilen);
    if (ui != NULL && parse_userinfo(ui, uilen, a) < 0) {
        memset(a, 0, sizeof(*a));
        return prun__err_set(err, PRUN_EINVAL,
            "invalid Redis URL '%s': bad user or password (too long, or a "
            "bad %%-escape)",
            shown);
    }
    if (strncmp(url, "unix://", 7) == 0)
        return parse_unix(ui != NULL ? ui + uilen + 1 : url + 7, a, shown, err);
    if (strncmp(url, "rediss://", 9) == 0) {
        memset(a, 0, sizeof(*a));
        return prun__err_set(err, PRUN_EINVAL,
            "Redis URL '%s': TLS (rediss://) is not supported by this build's "
            "hiredis; reach a TLS-only server through a local TLS tunnel "
            "(e.g. stunnel or 'socat TCP-LISTEN:6380,fork,bind=127.0.0.1 "
            "OPENSSL:host:port') and use redis://127.0.0.1:6380",
            shown);
    }
    if (strncmp(url, "redis://", 8) != 0) {
        memset(a, 0, sizeof(*a));
        return prun__err_set(err, PRUN_EINVAL,
            "invalid Redis URL '%s' (expected redis://host:port/db or "
            "unix:///path)",
            shown);
    }
    p = ui != NULL ? ui + uilen + 1 : url + 8;
    slash = strchr(p, '/');
    rc = parse_host(p, slash ? (size_t)(slash - p) : strlen(p), a, shown, err);
    if (rc < 0)
        return rc;
    if (slash != NULL && slash[1] != '\0') {
        if (prun__parse_int(slash + 1, 0, 100000, &v, &e) < 0) {
            memset(a, 0, sizeof(*a));
            return prun__err_set(err, PRUN_EINVAL,
                "invalid Redis URL '%s': bad database number", shown);
        }
        a->db = (int)v;
    }
    for (q = a->host; *q; q++)
        if (isspace((unsigned char)*q) || *q == '@') {
            memset(a, 0, sizeof(*a));
            return prun__err_set(
                err, PRUN_EINVAL, "invalid Redis URL '%s': bad host", shown);
        }
    return 0;
}

void prun__redis_url_format(
    const struct prun_redis_addr *a, char *buf, size_t n)
{
    char user[200] = "";

    /* The user is no secret: children need it to authenticate as it. */
    if (a->user[0]) {
        pct_encode(a->user, user, sizeof(user) - 1);
        strcat(user, "@");
    }
    if (a->is_unix) {
        if (a->db)
            snprintf(buf, n, "unix://%s%s?db=%d", user, a->path, a->db);
        else
            snprintf(buf, n, "unix://%s%s", user, a->path);
    } else if (strchr(a->host, ':') != NULL) {
        snprintf(buf, n, "redis://%s[%s]:%d/%d", user, a->host, a->port, a->db);
    } else {
        snprintf(buf, n, "redis://%s%s:%d/%d", user, a->host, a->port, a->db);
    }
}
