/*
 * A bump allocator for data that lives exactly as long as one source
 * transaction (or one decoded message): decoded relation names, tuple arrays,
 * transformed values. arena_reset() at commit gives all of it back at once,
 * which keeps per-row work free of malloc/free pairs and makes leaks of
 * per-row data impossible by construction. Memory stays bounded because a
 * reset keeps only the first chunk.
 */
#ifndef TM_ARENA_H
#define TM_ARENA_H

#include <stddef.h>

typedef struct Arena Arena;

Arena *arena_new(size_t chunk_size);
void arena_free(Arena *a);

/* Never returns NULL: allocation failure aborts (the daemon cannot continue). */
void *arena_alloc(Arena *a, size_t size);
void *arena_calloc(Arena *a, size_t n, size_t size);
char *arena_strndup(Arena *a, const char *s, size_t len);
char *arena_strdup(Arena *a, const char *s);

/* Frees everything allocated since creation; keeps one chunk for reuse. */
void arena_reset(Arena *a);

/* Bytes currently held (for metrics and the bounded-memory tests). */
size_t arena_bytes(const Arena *a);

#endif
