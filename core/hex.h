/*
 * Hexadecimal digits, as LSNs, COPY's \x escapes, bytea and uuid text use them.
 */
#ifndef TM_HEX_H
#define TM_HEX_H

/* The digit's value (0-15), or -1 when c is not a hex digit. */
static inline int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
