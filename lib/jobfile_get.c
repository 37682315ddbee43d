/* SPDX-License-Identifier: MIT */
/*
 * jobfile_get: the job file schema's vocabulary. What kind of scalar a
 * node is (YAML 1.2 core schema: a quoted scalar is a string, a plain one
 * may be null, a boolean or a number), and the typed getters every key
 * goes through (strings, commands, integers, booleans, durations, names,
 * templates), each failing with the node's position and, for unknown
 * keys, the closest known one. jobfile.c decides which key wants what.
 */
#include "jobfile_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- tree to model: helpers ---- */

int prun__jf_is_null(const struct ynode *n)
{
    return n->type == Y_SCALAR && n->plain &&
           (n->str[0] == '\0' || strcmp(n->str, "~") == 0 ||
               strcmp(n->str, "null") == 0 || strcmp(n->str, "Null") == 0 ||
               strcmp(n->str, "NULL") == 0);
}

/*
 * What a scalar resolves to under the YAML 1.2 core schema: a quoted (or
 * !!str) scalar is a string; a plain one is null, a boolean, an integer or
 * a float when it reads as one, else a string.
 */

static int match_all(const char *s, const char *set)
{
    return *s != '\0' && strspn(s, set) == strlen(s);
}

enum stype prun__jf_scalar_type(const struct ynode *n)
{
    static const char *const bools[] = {
        "true", "True", "TRUE", "false", "False", "FALSE"};
    static const char *const specials[] = {".inf", ".Inf", ".INF", "+.inf",
        "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN"};
    const char *s = n->str, *p;
    size_t i;

    if (!n->plain)
        return S_STR;
    if (prun__jf_is_null(n))
        return S_NULL;
    for (i = 0; i < sizeof(bools) / sizeof(bools[0]); i++)
        if (strcmp(s, bools[i]) == 0)
            return S_BOOL;
    for (i = 0; i < sizeof(specials) / sizeof(specials[0]); i++)
        if (strcmp(s, specials[i]) == 0)
            return S_FLOAT;
    if ((strncmp(s, "0x", 2) == 0 &&
            match_all(s + 2, "0123456789abcdefABCDEF")) ||
        (strncmp(s, "0o", 2) == 0 && match_all(s + 2, "01234567")))
        return S_INT;
    p = s + (*s == '-' || *s == '+');
    if (match_all(p, "0123456789"))
        return S_INT;
    /* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
    i = strspn(p, "0123456789");
    if (p[i] == '.') {
        size_t f = strspn(p + i + 1, "0123456789");
        if (i == 0 && f == 0)
            return S_STR;
        i += 1 + f;
    } else if (i == 0) {
        return S_STR;
    }
    if (p[i] == 'e' || p[i] == 'E') {
        size_t e = i + 1 + (p[i + 1] == '-' || p[i + 1] == '+');
        if (!match_all(p + e, "0123456789"))
            return S_STR;
        return S_FLOAT;
    }
    return p[i] == '\0' ? S_FLOAT : S_STR;
}

static const char *stype_name(enum stype t)
{
    static const char *const names[] = {
        "a string", "null", "a boolean", "an integer", "a number"};
    return names[t];
}

/* What a node is, for "got ...": the scalar quoted, or its kind. */
const char *prun__jf_got(const struct ynode *n, char *buf, size_t size)
{
    if (n->type == Y_SEQ)
        return "a sequence";
    if (n->type == Y_MAP)
        return "a mapping";
    snprintf(buf, size, "'%.48s%s'", n->str, strlen(n->str) > 48 ? "..." : "");
    return buf;
}

const struct ynode *prun__jf_map_get(
    const struct ynode *m, const char *key, const struct ynode **keynode)
{
    size_t i;

    for (i = 0; i < m->n; i += 2) {
        if (strcmp(m->kids[i]->str, key) == 0) {
            if (keynode != NULL)
                *keynode = m->kids[i];
            return m->kids[i + 1];
        }
    }
    return NULL;
}

/*
 * Keys people bring from other tools (CI files, compose, GNU parallel).
 * Edit distance alone would answer 'cmd' with 'cwd', which is never what
 * was meant, so these are consulted first.
 */
static const char *const synonyms[][2] = {
    {"cmd", "run"},
    {"command", "run"},
    {"commands", "run"},
    {"exec", "run"},
    {"script", "run"},
    {"shell", "run"},
    {"args", "run"},
    {"depends", "needs"},
    {"depends_on", "needs"},
    {"dependencies", "needs"},
    {"after", "needs"},
    {"requires", "needs"},
    {"need", "needs"},
    {"environment", "env"},
    {"dir", "cwd"},
    {"workdir", "cwd"},
    {"working_dir", "cwd"},
    {"for_each", "foreach"},
    {"for", "foreach"},
    {"each", "foreach"},
    {"items", "foreach"},
    {"parallel", "jobs"},
    {"concurrency", "jobs"},
    {"procs", "jobs"},
    {"retry", "retries"},
    {"attempts", "retries"},
    {"backoff", "retry_delay"},
    {"variables", "vars"},
    {"path", "file"},
    {"items", "list"},
    {"values", "list"},
    {"files", "glob"},
};

static const char *suggest(const char *word, const char *const *known, size_t n)
{
    size_t i, j;

    for (i = 0; i < sizeof(synonyms) / sizeof(synonyms[0]); i++) {
        if (strcmp(word, synonyms[i][0]) != 0)
            continue;
        for (j = 0; j < n; j++)
            if (strcmp(synonyms[i][1], known[j]) == 0)
                return known[j];
    }
    return prun__closest(word, known, n);
}

/* Rejects keys of m not in known; where is " in task 'x'" or "". */
int prun__jf_check_keys(struct ld *ld, const struct ynode *m,
    const char *const *known, size_t n, const char *where)
{
    size_t i, j;

    for (i = 0; i < m->n; i += 2) {
        const struct ynode *k = m->kids[i];
        const char *sugg;
        /*
         * At the top level, "x-" keys are ignored, as in compose files: a
         * place to put anchors that tasks merge with "<<: *name".
         */
        if (where[0] == '\0' && strncmp(k->str, "x-", 2) == 0)
            continue;
        for (j = 0; j < n; j++)
            if (strcmp(k->str, known[j]) == 0)
                break;
        if (j < n)
            continue;
        sugg = suggest(k->str, known, n);
        if (sugg != NULL)
            return prun__ld_fail(ld, k,
                "unknown key '%.64s'%s (did you mean '%s'?)", k->str, where,
                sugg);
        return prun__ld_fail(ld, k, "unknown key '%.64s'%s", k->str, where);
    }
    return 0;
}

int prun__jf_want_map(struct ld *ld, const struct ynode *k,
    const struct ynode *v, const char *what)
{
    char b[64];

    if (prun__jf_is_null(v))
        return prun__ld_fail(ld, k, "missing value for %s", what);
    if (v->type != Y_MAP)
        return prun__ld_fail(ld, v, "%s must be a mapping, got %s", what,
            prun__jf_got(v, b, sizeof(b)));
    return 0;
}

/* v must be a non-null scalar; what describes it ("a string"). */
int prun__jf_get_any_scalar(struct ld *ld, const struct ynode *k,
    const struct ynode *v, const char *what, const char **out)
{
    if (prun__jf_is_null(v))
        return prun__ld_fail(ld, k, "missing value for '%.64s'", k->str);
    if (v->type != Y_SCALAR)
        return prun__ld_fail(ld, v, "'%.64s' must be %s, got %s", k->str, what,
            v->type == Y_SEQ ? "a sequence" : "a mapping");
    *out = v->str;
    return 0;
}

/*
 * The one type check for values that are text: a string, or a number
 * written plainly (its text is taken as written). A boolean is refused: a
 * strict loader reads it as true/false, never as the text.
 */
int prun__jf_text_ok(
    struct ld *ld, const struct ynode *v, const char *key, const char *what)
{
    enum stype t = prun__jf_scalar_type(v);

    if (t == S_STR || t == S_INT || t == S_FLOAT)
        return 0;
    return prun__ld_fail(ld, v,
        "%s%.64s%s must be %s, got %s '%.48s' (quote it: \"%.48s\")",
        key ? "'" : "", key ? key : what, key ? "'" : "", "a string",
        stype_name(t), v->str, v->str);
}

int prun__jf_get_scalar(struct ld *ld, const struct ynode *k,
    const struct ynode *v, const char *what, const char **out)
{
    int rc;

    if ((rc = prun__jf_get_any_scalar(ld, k, v, what, out)) < 0)
        return rc;
    return prun__jf_text_ok(ld, v, k->str, NULL);
}

/* A command must be a string, not a number or a boolean that looks like one. */
int prun__jf_want_command(
    struct ld *ld, const struct ynode *v, const char *what)
{
    enum stype t = prun__jf_scalar_type(v);

    if (t == S_STR)
        return 0;
    return prun__ld_fail(ld, v,
        "%s must be a string naming a command, got %s '%.48s'", what,
        stype_name(t), v->str);
}

int prun__jf_get_int(struct ld *ld, const struct ynode *k,
    const struct ynode *v, long long min, long long max, long long *out)
{
    char what[48], b[64];
    const char *s = NULL;
    char *end;
    long long x;
    int rc;

    snprintf(what, sizeof(what), "an integer >= %lld", min);
    if ((rc = prun__jf_get_any_scalar(ld, k, v, what, &s)) < 0)
        return rc;
    if (!v->plain)
        return prun__ld_fail(ld, v, "'%.64s' must be %s, got the string %s",
            k->str, what, prun__jf_got(v, b, sizeof(b)));
    errno = 0;
    x = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || isspace((unsigned char)*s))
        return prun__ld_fail(ld, v, "'%.64s' must be %s, got %s", k->str, what,
            prun__jf_got(v, b, sizeof(b)));
    if (errno == ERANGE)
        x = *s == '-' ? LLONG_MIN : LLONG_MAX;
    if (x < min)
        return prun__ld_fail(ld, v, "'%.64s' must be %s, got %s", k->str, what,
            prun__jf_got(v, b, sizeof(b)));
    if (x > max)
        return prun__ld_fail(ld, v, "'%.64s' must be at most %lld, got %s",
            k->str, max, prun__jf_got(v, b, sizeof(b)));
    *out = x;
    return 0;
}

int prun__jf_get_uint(struct ld *ld, const struct ynode *k,
    const struct ynode *v, long long min, long long max, unsigned *out)
{
    long long x;
    int rc;

    if ((rc = prun__jf_get_int(ld, k, v, min, max, &x)) < 0)
        return rc;
    *out = (unsigned)x;
    return 0;
}

int prun__jf_get_bool(
    struct ld *ld, const struct ynode *k, const struct ynode *v, int *out)
{
    char b[64];
    const char *s = NULL;
    int rc;

    if ((rc = prun__jf_get_any_scalar(ld, k, v, "true or false", &s)) < 0)
        return rc;
    if (prun__jf_scalar_type(v) != S_BOOL || prun__parse_bool(s, out, NULL) < 0)
        return prun__ld_fail(ld, v, "'%.64s' must be true or false, got %s%s",
            k->str, v->plain ? "" : "the string ",
            prun__jf_got(v, b, sizeof(b)));
    return 0;
}

int prun__jf_get_duration(
    struct ld *ld, const struct ynode *k, const struct ynode *v, int64_t *out)
{
    struct prun_err e;
    char b[64];
    const char *s = NULL;
    int rc;

    if ((rc = prun__jf_get_scalar(ld, k, v, "a duration", &s)) < 0)
        return rc;
    if (s[0] == '-')
        return prun__ld_fail(ld, v, "'%.64s' must not be negative, got %s",
            k->str, prun__jf_got(v, b, sizeof(b)));
    if (prun__parse_duration(s, out, &e) < 0)
        return prun__ld_fail(ld, v, "'%.64s': %s", k->str, e.msg);
    return 0;
}

/* A string that must be a name of the given kind (see name_ok). */

int prun__jf_name_ok(const char *s, enum name_kind kind)
{
    size_t i, n = strlen(s);

    if (n == 0 || (kind != NAME_ENV && n > 64))
        return 0;
    if (kind == NAME_TASK ? !isalnum((unsigned char)s[0])
                          : !isalpha((unsigned char)s[0]) && s[0] != '_')
        return 0;
    for (i = 1; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '_')
            continue;
        if (c == '-' && (kind == NAME_TASK || kind == NAME_KEY))
            continue;
        if (c == '.' && kind == NAME_TASK && s[i - 1] != '.')
            continue;
        return 0;
    }
    return 1;
}

int prun__jf_check_name(
    struct ld *ld, const struct ynode *n, enum name_kind kind, const char *what)
{
    static const char *const rules[] = {
        "letters, digits, '.', '_' and '-', starting with a letter or digit, "
        "at most 64",
        "letters, digits and '_', not starting with a digit, at most 64",
        "letters, digits and '_', not starting with a digit",
        "letters, digits, '_' and '-', starting with a letter or '_', at "
        "most 64",
    };

    if (prun__jf_name_ok(n->str, kind))
        return 0;
    if (kind == NAME_TASK &&
        (strchr(n->str, '/') != NULL || strstr(n->str, "..") != NULL))
        return prun__ld_fail(ld, n,
            "invalid %s '%.64s': it must not contain '/' or '..'", what,
            n->str);
    return prun__ld_fail(
        ld, n, "invalid %s '%.64s' (use %s)", what, n->str, rules[kind]);
}

/*
 * A path-like string (lines, glob, segment file) where only {vars.NAME} and
 * the brace escapes make sense, since it is used once, before any instance
 * exists. It is expanded here into plain text.
 */
int prun__jf_static_str(struct ld *ld, const struct ynode *k,
    const struct ynode *v, const char **out)
{
    struct prun_tpl t;
    struct prun_pos pos;
    const char *s = NULL, *end;
    unsigned col;
    size_t i;
    int rc;

    if ((rc = prun__jf_get_scalar(ld, k, v, "a string", &s)) < 0)
        return rc;
    if (s[0] == '\0')
        return prun__ld_fail(ld, v, "'%.64s' must not be empty", k->str);
    pos.line = v->line;
    pos.col = v->col + !v->plain;
    if ((rc = prun__tpl_compile(ld->job, &t, s, pos, NULL, 0, ld->err)) < 0)
        return rc;
    if (t.nparts > 1 || (t.nparts == 1 && t.parts[0].kind != PRUN_PH_LIT)) {
        /* Compiled fine, so the first brace that is not {vars.} or an
         * escape is a well-formed instance placeholder: point at it. */
        for (i = 0, col = pos.col; s[i] != '\0'; i++) {
            if ((s[i] == '{' || s[i] == '}') && s[i + 1] == s[i]) {
                i++;
                col += 2;
                continue;
            }
            if (s[i] == '{' && strncmp(s + i, "{vars.", 6) != 0 &&
                (end = strchr(s + i, '}')) != NULL)
                return prun__ld_fail_at(ld, v->line, col,
                    "'%.64s' may only use {vars.NAME} placeholders, not "
                    "'%.*s'",
                    k->str,
                    (int)(end - (s + i) + 1 > 64 ? 64 : end - (s + i) + 1),
                    s + i);
            if (((unsigned char)s[i] & 0xC0) != 0x80)
                col++;
        }
        return prun__ld_fail(
            ld, v, "'%.64s' may only use {vars.NAME} placeholders", k->str);
    }
    *out = t.nparts == 0 ? "" : t.parts[0].text;
    return 0;
}

int prun__jf_compile(struct ld *ld, struct prun_tpl *t, const struct ynode *v,
    const char *const *keys, size_t nkeys)
{
    struct prun_pos pos;

    /* Quoted scalars start one column after the node: their quote. */
    pos.line = v->line;
    pos.col = v->col + !v->plain;
    return prun__tpl_compile(ld->job, t, v->str, pos, keys, nkeys, ld->err);
}

/* The same for the string form of run, which /bin/sh reads. */
int prun__jf_compile_shell(struct ld *ld, struct prun_tpl *t,
    const struct ynode *v, const char *const *keys, size_t nkeys)
{
    struct prun_pos pos;

    pos.line = v->line;
    pos.col = v->col + !v->plain;
    return prun__tpl_compile_shell(
        ld->job, t, v->str, pos, keys, nkeys, ld->err);
}

struct prun_pos prun__jf_pos_of(const struct ynode *n)
{
    struct prun_pos p;

    p.line = n->line;
    p.col = n->col;
    return p;
}
