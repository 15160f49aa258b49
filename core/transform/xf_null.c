/*
 * NULL handling: placeholders that mean "missing" ('', 'N/A', 'n.a.')
 * become real NULLs, NULLs get a default, and a NOT NULL target column fed
 * from a nullable source can demand a value. Placeholders are matched as a
 * set, optionally ignoring case and surrounding blanks, since legacy forms
 * wrote them every way.
 */
#include "core/transform/xf.h"

#include <errno.h>

int xf_null_if(const XfNullIf *n, XfStr in, Arena *a, XfStr *out)
{
    XfStr key = in, hit;

    if (!in.s) {
        *out = in;
        return 0;
    }
    if (n->trim)
        xf_trim(in, a, &key);
    *out = xf_dict_get(n->values, key, a, &hit) ? XF_NULL : in;
    return 0;
}

int xf_if_null(XfStr def, XfStr in, Arena *a, XfStr *out)
{
    (void)a;
    *out = in.s ? in : def;
    return 0;
}

int xf_require(XfStr in, Arena *a, XfStr *out)
{
    (void)a;
    if (!in.s)
        return xf_fail(-EINVAL, "require", in, "a value is required here");
    *out = in;
    return 0;
}
