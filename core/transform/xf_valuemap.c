/*
 * Value maps: enum renames ("A" → "active"), state codes and CSV lookup
 * tables all reduce to one dictionary lookup with a policy for values the
 * map does not know. The safe default is an error: a new status value in the
 * source must stop the pipeline (or go to the dead-letter table) rather than
 * be written unmapped.
 */
#include "core/transform/xf.h"

#include <errno.h>

int xf_value_map(const XfValueMap *m, XfStr in, Arena *a, XfStr *out)
{
    XfStr v;

    if (!in.s) {
        *out = in;
        return 0;
    }
    if (xf_dict_get(m->dict, in, a, &v)) {
        *out = v;
        return 0;
    }
    switch (m->unmapped) {
    case XF_UNMAPPED_KEEP:
        *out = in;
        return 0;
    case XF_UNMAPPED_NULL:
        *out = XF_NULL;
        return 0;
    case XF_UNMAPPED_DEFAULT:
        *out = m->def;
        return 0;
    case XF_UNMAPPED_ERROR:
        break;
    }
    return xf_fail(-EINVAL, m->fname ? m->fname : "map", in,
                   "not in the map (%zu known values; add it, or set unmapped: keep|null or a "
                   "default)",
                   xf_dict_size(m->dict));
}
