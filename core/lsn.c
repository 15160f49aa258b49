/*
 * LSN text conversions. Strict: the parser rejects anything but two hex
 * groups of at most eight digits separated by one slash, since a mangled
 * watermark must stop the pipeline rather than restart it at 0/0.
 */
#include "core/lsn.h"
#include "core/error.h"
#include "core/hex.h"

#include <stdio.h>

int lsn_parse(const char *s, Lsn *out)
{
    uint64_t parts[2] = {0, 0};
    const char *p = s;

    if (!s)
        return tm_fail(-EINVAL, "missing LSN");
    for (int i = 0; i < 2; i++) {
        int ndigits = 0;
        int v;

        while ((v = hex_value(*p)) >= 0) {
            if (++ndigits > 8)
                return tm_fail(-EINVAL, "invalid LSN \"%s\"", s);
            parts[i] = (parts[i] << 4) | (uint64_t)v;
            p++;
        }
        if (ndigits == 0)
            return tm_fail(-EINVAL, "invalid LSN \"%s\"", s);
        if (i == 0 && *p++ != '/')
            return tm_fail(-EINVAL, "invalid LSN \"%s\"", s);
    }
    if (*p != '\0')
        return tm_fail(-EINVAL, "invalid LSN \"%s\"", s);
    *out = (parts[0] << 32) | parts[1];
    return 0;
}

char *lsn_format(Lsn lsn, char *buf, unsigned long len)
{
    snprintf(buf, len, LSN_FMT, LSN_ARGS(lsn));
    return buf;
}
