/*
 * Debezium's encodings read back: one field of a change event, as Kafka
 * Connect's JsonConverter wrote it for a column (sinks/kafka renders them,
 * docs/KAFKA.md lists them), back to the text PostgreSQL prints for the
 * value, which the PostgreSQL sink then writes as a parameter. The column's
 * rendering is chosen exactly as the producer chose it: debezium_col_new()
 * over the table's catalog types and the producer's converter settings, so
 * the decoder is the inverse of each op. Pure functions over jansson values:
 * the unit tests round-trip every type and mode through the encoder.
 */
#ifndef TM_DBZDECODE_H
#define TM_DBZDECODE_H

#include "core/buf.h"
#include "sinks/kafka/debezium.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * Appends the PostgreSQL text of v, the JSON of a non-null value of a
 * column rendered as c. -EINVAL (tm_error() says what) when v is not what
 * the encoding produces.
 */
int dbzdecode_value(const DbzCol *c, const json_t *v, Buf *out);

/* Whether v is Debezium's unchanged-TOAST placeholder in c's encoding. */
bool dbzdecode_unavailable(const DbzCol *c, const json_t *v);

/*
 * What reading c's encoding back cannot restore (NULL: nothing), for a
 * warning when a table is first seen; typmod is the column's.
 */
const char *dbzdecode_lossy(const DbzCol *c, int32_t typmod);

/* Whether Debezium leaves columns rendered as c out of its events. */
bool dbzdecode_skipped(const DbzCol *c);

/* ---- dbzdecode_time.c -------------------------------------------------- */
int dbzdecode_date(const DbzCol *c, const json_t *v, Buf *out);
int dbzdecode_time(const DbzCol *c, const json_t *v, Buf *out);
int dbzdecode_timetz(const DbzCol *c, const json_t *v, Buf *out);
int dbzdecode_timestamp(const DbzCol *c, const json_t *v, Buf *out);
int dbzdecode_timestamptz(const DbzCol *c, const json_t *v, Buf *out);
int dbzdecode_interval(const DbzCol *c, const json_t *v, Buf *out);

/* Fails with "cannot read <what> from <JSON> (type oid N)". */
int dbzdecode_bad(const DbzCol *c, const char *what, const json_t *v);

#endif
