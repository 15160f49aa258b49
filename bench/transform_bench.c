/*
 * Micro-benchmark of the mapping engine on the bulk path: rows/s of
 * mapping_apply_copy_row() over synthetic pgbench_accounts COPY rows (aid,
 * bid, abalance, filler char(84)), with an identity plan and with a
 * 5-function mapping (id_offset, cast int, currency, trim, upper), next to
 * the floor of parsing and re-rendering the row without any mapping. Prints
 * one line per case and the mapped/identity ratio.
 *
 *   build/bench/transform_bench [rows]     (default 2,000,000)
 */
#include "config/config.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/copytext.h"
#include "core/error.h"
#include "core/transform/mapping.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NSAMPLE 4096

static const char *const mapping_yaml =
    "pipeline: bench\nsource: {conninfo: x}\ntarget: {conninfo: y}\n"
    "mapping:\n"
    "  public.pgbench_accounts:\n"
    "    columns:\n"
    "      aid: {transform: [{id_offset: 1000000000}]}\n"
    "      bid: {transform: [{cast: int}]}\n"
    "      abalance: {transform: [{currency: {rate: \"1.0837\", scale: 2, rounding: "
    "half_even}}]}\n"
    "      filler: {transform: [trim, upper]}\n";

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef enum Mode { RAW, PLAN } Mode;

static double run(Mode mode, const MappingPlan *plan, char **rows, size_t *lens, long n,
                  size_t *bytes_out)
{
    Arena *arena = arena_new(0);
    CopyText ct = COPYTEXT_INIT;
    Buf out = BUF_INIT;
    double t0 = now();
    size_t bytes = 0;

    for (long i = 0; i < n; i++) {
        size_t k = (size_t)i % NSAMPLE;
        bool filtered;
        Tuple t;

        if (mode == RAW) {
            if (copytext_parse(&ct, rows[k], lens[k], 4, &t) < 0 ||
                mapping_copy_render(&t, &out) < 0)
                abort();
        } else if (mapping_apply_copy_row(plan, &ct, rows[k], lens[k], arena, &out, &filtered) <
                   0) {
            fprintf(stderr, "row %ld: %s\n", i, tm_error());
            exit(1);
        }
        if ((i & 1023) == 1023) {
            bytes += out.len;
            buf_clear(&out);
            arena_reset(arena);
        }
    }
    bytes += out.len;
    double secs = now() - t0;

    *bytes_out = bytes;
    buf_release(&out);
    copytext_release(&ct);
    arena_free(arena);
    return (double)n / secs;
}

int main(int argc, char **argv)
{
    static char *names[] = {"aid", "bid", "abalance", "filler"};
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    RelColumn cols[4];
    RelInfo rel = {.oid = 1,
                   .schema = "public",
                   .name = "pgbench_accounts",
                   .replident = 'd',
                   .ncols = 4,
                   .cols = cols};
    char *rows[NSAMPLE];
    size_t lens[NSAMPLE], bytes;
    MappingPlan *identity, *mapped;
    Config *cfg;

    for (int i = 0; i < 4; i++)
        cols[i] = (RelColumn){
            .name = names[i], .type_oid = i < 3 ? 23 : 1042, .typmod = -1, .is_key = i == 0};
    srand(42);
    for (int i = 0; i < NSAMPLE; i++) {
        /* pgbench's filler is 84 blanks; vary it a little so trim/upper do work. */
        char filler[85];

        memset(filler, ' ', 84);
        filler[84] = '\0';
        memcpy(filler + 2, "acct note", 9);
        int len = asprintf(&rows[i], "%d\t%d\t%d\t%s\n", i * 37 + 1, i / 100 + 1,
                           rand() % 200001 - 100000, filler);
        if (len < 0)
            abort();
        lens[i] = (size_t)len;
    }
    if (config_load_string("bench.yaml", mapping_yaml, &cfg) < 0 ||
        mapping_compile(NULL, &rel, &identity) < 0 ||
        mapping_compile(mapping_find(cfg->tree, "public", "pgbench_accounts"), &rel, &mapped) < 0) {
        fprintf(stderr, "%s\n", tm_error());
        return 1;
    }
    double raw = run(RAW, NULL, rows, lens, n, &bytes);
    printf("parse+render, no mapping : %10.0f rows/s  (%zu bytes out)\n", raw, bytes);
    double id = run(PLAN, identity, rows, lens, n, &bytes);
    printf("identity mapping         : %10.0f rows/s  (%zu bytes out)\n", id, bytes);
    double fx = run(PLAN, mapped, rows, lens, n, &bytes);
    printf("5-function mapping       : %10.0f rows/s  (%zu bytes out)\n", fx, bytes);
    printf("5-function / identity    : %10.2f\n", fx / id);
    mapping_free(identity);
    mapping_free(mapped);
    config_free(cfg);
    for (int i = 0; i < NSAMPLE; i++)
        free(rows[i]);
    return 0;
}
