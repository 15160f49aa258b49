/*
 * The compiled form of a table mapping, shared by mapping.c (compile) and
 * mapping_apply.c (per row). Producers compute output columns: a source
 * column, a constant or a concatenation, each followed by a transform chain
 * whose last step may yield several columns (parse_name).
 */
#ifndef TM_MAPPING_INT_H
#define TM_MAPPING_INT_H

#include "core/transform/mapping.h"

typedef enum ProdKind { P_COLUMN, P_CONST, P_CONCAT } ProdKind;

typedef struct ConcatPart {
    int src;   /* source column, or -1 for a literal */
    XfStr lit; /* malloc'd */
} ConcatPart;

typedef struct Producer {
    ProdKind kind;
    int src;    /* P_COLUMN */
    char *what; /* "column signup -> signed_up_on", for messages */
    XfStr constval;
    ConcatPart *parts;
    size_t nparts;
    XfStr sep; /* concat with separator: NULL parts are skipped (concat_ws) */
    XfStep *steps;
    size_t nsteps;
    uint16_t first_out, nout;
    bool identity; /* P_COLUMN without steps: the value (even 'u') passes through */
} Producer;

typedef enum FilterOp { F_IN, F_NOT_IN, F_IS_NULL, F_NOT_NULL } FilterOp;

typedef struct Filter {
    int src;
    char *col; /* for messages */
    FilterOp op;
    XfDict *values;
} Filter;

struct MappingPlan {
    char *src_display; /* schema.name of the source, for messages */
    uint16_t src_ncols;
    char *tschema, *tname;
    MappingOnError on_error;
    bool
        on_error_set; /* the table's mapping names on_error (the pipeline default does not apply) */
    Producer *prods;
    size_t nprods;
    size_t nout;
    char **names; /* nout target column names */
    RelInfo target;
    Filter *filters;
    size_t nfilters;
    int *key_src; /* source key columns, for the row key in messages */
    char **key_names;
    size_t nkeys;
    XfIdLookup id_lookup;
    bool uses_id_lookup;
    bool identity;
};

#endif
