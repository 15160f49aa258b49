/*
 * Writers for the Prometheus text exposition format (version 0.0.4): a
 * family header (# HELP / # TYPE), samples with an already-built label set,
 * and label-value escaping. The metrics handler builds its whole page into
 * one Buf with these, so every value and label reaches the scraper in the
 * one form Prometheus parses (escaped quotes, NaN/+Inf spelled its way).
 */
#ifndef TM_PROM_H
#define TM_PROM_H

#include "core/buf.h"

/*
 * Writes "# HELP name help" (help escaped: backslash, newline) and
 * "# TYPE name type". Call it once per family, before its samples; type is
 * "counter", "gauge", "histogram", "summary" or "untyped".
 */
void prom_family(Buf *b, const char *name, const char *type, const char *help);

/*
 * Writes one sample line: name{labels} value. labels is an already-built
 * `key="value",...` string (see prom_label); NULL or "" writes no braces.
 * Integral values print without exponent; NaN and infinities as Prometheus
 * spells them.
 */
void prom_sample(Buf *b, const char *name, const char *labels, double value);

/* Appends value escaped for a label value: backslash, double quote, newline. */
void prom_label_escape(Buf *b, const char *value);

/* Appends `key="escaped value"` to a label set, with a comma when it is not empty. */
void prom_label(Buf *labels, const char *key, const char *value);

#endif
