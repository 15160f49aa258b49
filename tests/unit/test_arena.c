/*
 * Arena tests: many allocations that never overlap, alignment suitable for
 * any type, requests larger than a chunk, and reset giving memory back so a
 * long-running daemon stays bounded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/arena.h"

#include <string.h>

#define CHUNK 1024

static void assert_aligned(const void *p)
{
    assert_int_equal((uintptr_t)p % _Alignof(max_align_t), 0);
}

static void test_many_allocations(void **state)
{
    enum { N = 5000 };
    static unsigned char *ptrs[N];
    static size_t sizes[N];
    Arena *a = arena_new(CHUNK);

    (void)state;
    for (size_t i = 0; i < N; i++) {
        sizes[i] = (i * 7) % 97; /* includes 0 and odd sizes */
        ptrs[i] = arena_alloc(a, sizes[i]);
        assert_non_null(ptrs[i]);
        assert_aligned(ptrs[i]);
        memset(ptrs[i], (int)(i & 0xff), sizes[i]);
    }
    /* Had any two allocations overlapped, a later fill would show through. */
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < sizes[i]; j++)
            assert_int_equal(ptrs[i][j], i & 0xff);
    assert_true(arena_bytes(a) >= CHUNK);
    arena_free(a);
}

static void test_alignment(void **state)
{
    Arena *a = arena_new(CHUNK);

    (void)state;
    for (size_t size = 0; size < 200; size++) {
        void *p = arena_alloc(a, size);

        assert_aligned(p);
    }
    for (size_t n = 1; n < 50; n++)
        assert_aligned(arena_calloc(a, n, 3));
    assert_aligned(arena_strdup(a, "x"));
    assert_aligned(arena_alloc(a, 3 * CHUNK));
    arena_free(a);
}

static void test_zero_size_distinct(void **state)
{
    Arena *a = arena_new(CHUNK);

    (void)state;
    void *p = arena_alloc(a, 0);
    void *q = arena_alloc(a, 0);
    assert_non_null(p);
    assert_non_null(q);
    assert_ptr_not_equal(p, q);
    arena_free(a);
}

static void test_large_allocation(void **state)
{
    Arena *a = arena_new(CHUNK);

    (void)state;
    size_t before = arena_bytes(a);
    char *small1 = arena_alloc(a, 16);
    size_t big_size = 100 * CHUNK;
    char *big = arena_alloc(a, big_size);
    char *small2 = arena_alloc(a, 16);

    assert_non_null(big);
    assert_aligned(big);
    memset(small1, 'a', 16);
    memset(big, 'b', big_size);
    memset(small2, 'c', 16);
    assert_int_equal(small1[15], 'a');
    assert_int_equal(big[0], 'b');
    assert_int_equal(big[big_size - 1], 'b');
    assert_int_equal(small2[0], 'c');
    assert_true(arena_bytes(a) >= before + big_size);
    arena_free(a);
}

static void test_reset_reuse(void **state)
{
    Arena *a = arena_new(CHUNK);

    (void)state;
    size_t initial = arena_bytes(a);
    for (int i = 0; i < 1000; i++)
        memset(arena_alloc(a, 100), 0x55, 100);
    arena_alloc(a, 50 * CHUNK);
    size_t grown = arena_bytes(a);
    assert_true(grown > initial);

    arena_reset(a);
    assert_int_equal(arena_bytes(a), initial);

    /* Reusable after reset, and repeated cycles do not creep upward. */
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 100; i++) {
            unsigned char *p = arena_alloc(a, 64);
            assert_aligned(p);
            memset(p, round, 64);
            assert_int_equal(p[63], round);
        }
        arena_alloc(a, 4 * CHUNK);
        arena_reset(a);
        assert_int_equal(arena_bytes(a), initial);
    }
    arena_free(a);
}

static void test_calloc_and_strings(void **state)
{
    Arena *a = arena_new(CHUNK);

    (void)state;
    /* Dirty the chunk, reset, then check calloc really zeroes reused memory. */
    memset(arena_alloc(a, 512), 0xff, 512);
    arena_reset(a);
    unsigned char *z = arena_calloc(a, 128, 4);
    for (size_t i = 0; i < 512; i++)
        assert_int_equal(z[i], 0);

    const char *src = "public.orders";
    char *s = arena_strdup(a, src);
    assert_string_equal(s, src);
    assert_ptr_not_equal(s, src);
    char *n = arena_strndup(a, src, 6);
    assert_string_equal(n, "public");
    char *e = arena_strndup(a, "abc", 0);
    assert_string_equal(e, "");
    arena_free(a);
}

static void test_default_chunk(void **state)
{
    Arena *a = arena_new(0);

    (void)state;
    assert_true(arena_bytes(a) > 0);
    assert_aligned(arena_alloc(a, 1));
    arena_free(a);
    arena_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_allocations),   cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_zero_size_distinct), cmocka_unit_test(test_large_allocation),
        cmocka_unit_test(test_reset_reuse),        cmocka_unit_test(test_calloc_and_strings),
        cmocka_unit_test(test_default_chunk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
