/*
 * SQL qualified names as users write them in config: `customers`,
 * `public.customers`, `"Sales Dept"."Order Lines"`. Unquoted parts fold to
 * lower case, quoted parts keep their case and "" stands for one quote, as in
 * PostgreSQL. An unqualified name is in schema public.
 */
#ifndef TM_SQLNAME_H
#define TM_SQLNAME_H

/* Returns 0 with malloc'd *schema and *name, or -EINVAL with tm_error() set. */
int sqlname_parse(const char *s, char **schema, char **name);

#endif
