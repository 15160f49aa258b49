/*
 * Arena implementation: a singly linked list of chunks; requests larger than
 * a chunk get a chunk of their own so one huge value does not force every
 * later chunk to be huge.
 */
#include "core/arena.h"
#include "core/xmalloc.h"

#include <stdint.h>
#include <string.h>

typedef struct Chunk {
    struct Chunk *next;
    size_t size;
    size_t used;
    max_align_t data[];
} Chunk;

struct Arena {
    Chunk *head;
    size_t chunk_size;
    size_t bytes;
};

static Chunk *chunk_new(size_t size)
{
    Chunk *c = xmalloc(sizeof(Chunk) + size);

    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

Arena *arena_new(size_t chunk_size)
{
    Arena *a = xcalloc(1, sizeof(*a));

    a->chunk_size = chunk_size ? chunk_size : 64 * 1024;
    a->head = chunk_new(a->chunk_size);
    a->bytes = a->chunk_size;
    return a;
}

void arena_free(Arena *a)
{
    if (!a)
        return;
    for (Chunk *c = a->head, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(a);
}

void *arena_alloc(Arena *a, size_t size)
{
    const size_t align = _Alignof(max_align_t);
    size_t need = (size + align - 1) & ~(align - 1);
    Chunk *c = a->head;

    if (need == 0)
        need = align;
    if (c->size - c->used < need) {
        size_t sz = need > a->chunk_size ? need : a->chunk_size;

        c = chunk_new(sz);
        a->bytes += sz;
        /* Keep the current chunk at the head so small allocations continue in it
         * when a one-off large chunk was needed. */
        if (sz > a->chunk_size) {
            c->next = a->head->next;
            a->head->next = c;
            c->used = need;
            return (char *)c->data;
        }
        c->next = a->head;
        a->head = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += need;
    return p;
}

void *arena_calloc(Arena *a, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        xalloc_die();
    void *p = arena_alloc(a, n * size);
    memset(p, 0, n * size);
    return p;
}

char *arena_strndup(Arena *a, const char *s, size_t len)
{
    char *p = arena_alloc(a, len + 1);

    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *arena_strdup(Arena *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

void arena_reset(Arena *a)
{
    Chunk *keep = NULL;

    /* Keep one regular-size chunk; free the rest. */
    for (Chunk *c = a->head, *n; c; c = n) {
        n = c->next;
        if (!keep && c->size == a->chunk_size) {
            keep = c;
            continue;
        }
        free(c);
    }
    if (!keep)
        keep = chunk_new(a->chunk_size);
    keep->next = NULL;
    keep->used = 0;
    a->head = keep;
    a->bytes = a->chunk_size;
}

size_t arena_bytes(const Arena *a)
{
    return a->bytes;
}
