/*
 * ID remapping for fan-in: several sources write into one target and their
 * generated keys collide. Either each source gets an arithmetic namespace
 * (id + offset, or id × k + tag, which keeps ids of every source disjoint
 * without any state), or an old → new table kept on the target
 * (tidemark.id_map) is consulted through a callback the pipeline provides.
 * The same transform on a foreign key column keeps references intact.
 */
#include "core/transform/xf.h"

#include "core/error.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int parse_id(XfStr in, int64_t *out)
{
    size_t i = 0, end = in.len;
    bool neg = false;
    uint64_t mag = 0;

    while (i < end && (in.s[i] == ' ' || in.s[i] == '\t'))
        i++;
    while (end > i && (in.s[end - 1] == ' ' || in.s[end - 1] == '\t'))
        end--;
    if (i < end && (in.s[i] == '-' || in.s[i] == '+'))
        neg = in.s[i++] == '-';
    if (i == end)
        return -EINVAL;
    for (; i < end; i++) {
        if (in.s[i] < '0' || in.s[i] > '9')
            return -EINVAL;
        if (mag > ((uint64_t)INT64_MAX + 1 - (uint64_t)(in.s[i] - '0')) / 10)
            return -ERANGE;
        mag = mag * 10 + (uint64_t)(in.s[i] - '0');
    }
    if (!neg && mag > (uint64_t)INT64_MAX)
        return -ERANGE;
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return 0;
}

int xf_id_remap(int64_t multiply, int64_t add, XfStr in, Arena *a, XfStr *out)
{
    int64_t id, r;
    char buf[24];
    int rc;

    if (!in.s) {
        *out = in;
        return 0;
    }
    rc = parse_id(in, &id);
    if (rc < 0)
        return xf_fail(rc, "id_remap", in,
                       rc == -ERANGE ? "out of bigint range" : "not an integer id");
    if (__builtin_mul_overflow(id, multiply, &r) || __builtin_add_overflow(r, add, &r))
        return xf_fail(-ERANGE, "id_remap", in, "id * %" PRId64 " + %" PRId64 " overflows bigint",
                       multiply, add);
    int n = snprintf(buf, sizeof(buf), "%" PRId64, r);
    *out = xf_dup(a, buf, (size_t)n);
    return 0;
}

int xf_id_lookup(const XfIdLookup *l, const char *ns, XfStr in, Arena *a, XfStr *out)
{
    const char *found = NULL;
    XfStr key;
    int rc;

    if (!in.s) {
        *out = in;
        return 0;
    }
    if (!l || !l->fn)
        return xf_fail(-ENOTCONN, "id_map", in,
                       "no id map is connected for namespace \"%s\" (the pipeline provides it)",
                       ns);
    key = xf_dup(a, in.s, in.len);
    rc = l->fn(l->ctx, ns, key.s, &found);
    if (rc == -ENOENT)
        return xf_fail(rc, "id_map", in, "no new id for this id in namespace \"%s\"", ns);
    if (rc < 0)
        return tm_fail_ctx(rc, "id_map: namespace \"%s\", id %.64s", ns, key.s);
    if (!found)
        return xf_fail(-EINVAL, "id_map", in, "the lookup returned no id");
    *out = xf_dup(a, found, strlen(found));
    return 0;
}
