/*
 * The bookkeeping of the bisection, free of SQL: where to cut an integer key
 * range, and which buckets differ between the two sides' aggregates. A
 * bucket differs when its row count or its hash sum differs, or when only
 * one side has it; the larger of the two counts decides whether the bucket
 * is split again or its rows are fetched whole.
 */
#include "core/xmalloc.h"
#include "migration/verify_int.h"

#include <stdlib.h>
#include <string.h>

int verify_int_bounds(int64_t lo, int64_t hi, int n, int64_t *out)
{
    /* __int128: hi - lo of two int64 values can exceed INT64_MAX */
    __int128 width = (__int128)hi - (__int128)lo;
    int k = 0;

    if (n < 2 || width < 2)
        return 0;
    for (int i = 1; i < n; i++) {
        int64_t b = (int64_t)((__int128)lo + width * i / n);

        if (b > lo && b < hi && (k == 0 || b > out[k - 1]))
            out[k++] = b;
    }
    return k;
}

int64_t verify_int_width(int64_t lo, int64_t hi, int n)
{
    __int128 width = (__int128)hi - (__int128)lo;

    if (n < 2 || width < 2 || width > INT64_MAX)
        return 0;
    return (int64_t)((width + n - 1) / n);
}

static bool same_sum(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

static int cmp_bucket(const void *x, const void *y)
{
    long long a = ((const VBucket *)x)->id, b = ((const VBucket *)y)->id;

    return a < b ? -1 : a > b;
}

size_t verify_buckets_diff(const VBucket *a, size_t na, const VBucket *b, size_t nb,
                           long long **ids, long long **rows)
{
    VBucket *sa = xcalloc(na + 1, sizeof(VBucket)), *sb = xcalloc(nb + 1, sizeof(VBucket));
    size_t i = 0, j = 0, n = 0;

    if (na) {
        memcpy(sa, a, na * sizeof(VBucket));
        qsort(sa, na, sizeof(VBucket), cmp_bucket);
    }
    if (nb) {
        memcpy(sb, b, nb * sizeof(VBucket));
        qsort(sb, nb, sizeof(VBucket), cmp_bucket);
    }
    *ids = NULL;
    *rows = NULL;
    while (i < na || j < nb) {
        long long id, cnt;
        bool differ;

        if (j >= nb || (i < na && sa[i].id < sb[j].id)) {
            id = sa[i].id;
            cnt = sa[i].count;
            differ = sa[i].count != 0;
            i++;
        } else if (i >= na || sb[j].id < sa[i].id) {
            id = sb[j].id;
            cnt = sb[j].count;
            differ = sb[j].count != 0;
            j++;
        } else {
            id = sa[i].id;
            cnt = sa[i].count > sb[j].count ? sa[i].count : sb[j].count;
            differ = sa[i].count != sb[j].count || !same_sum(sa[i].sum, sb[j].sum);
            i++;
            j++;
        }
        if (!differ)
            continue;
        *ids = xrealloc(*ids, (n + 1) * sizeof(long long));
        *rows = xrealloc(*rows, (n + 1) * sizeof(long long));
        (*ids)[n] = id;
        (*rows)[n] = cnt;
        n++;
    }
    free(sa);
    free(sb);
    return n;
}

void verify_buckets_release(VBucket *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(b[i].sum);
    free(b);
}
