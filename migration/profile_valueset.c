/*
 * Value sets the profiler knows, to spot a column that mixes a set's full
 * names and its abbreviations ("Massachusetts" and "MA"), which a migration
 * usually has to normalize. The US states and DC ship; more sets are more
 * tables of pairs.
 */
#include "core/xmalloc.h"
#include "migration/profile_int.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static const ProfileValuePair states[] = {
    {"AL", "Alabama"},        {"AK", "Alaska"},         {"AZ", "Arizona"},
    {"AR", "Arkansas"},       {"CA", "California"},     {"CO", "Colorado"},
    {"CT", "Connecticut"},    {"DE", "Delaware"},       {"DC", "District of Columbia"},
    {"FL", "Florida"},        {"GA", "Georgia"},        {"HI", "Hawaii"},
    {"ID", "Idaho"},          {"IL", "Illinois"},       {"IN", "Indiana"},
    {"IA", "Iowa"},           {"KS", "Kansas"},         {"KY", "Kentucky"},
    {"LA", "Louisiana"},      {"ME", "Maine"},          {"MD", "Maryland"},
    {"MA", "Massachusetts"},  {"MI", "Michigan"},       {"MN", "Minnesota"},
    {"MS", "Mississippi"},    {"MO", "Missouri"},       {"MT", "Montana"},
    {"NE", "Nebraska"},       {"NV", "Nevada"},         {"NH", "New Hampshire"},
    {"NJ", "New Jersey"},     {"NM", "New Mexico"},     {"NY", "New York"},
    {"NC", "North Carolina"}, {"ND", "North Dakota"},   {"OH", "Ohio"},
    {"OK", "Oklahoma"},       {"OR", "Oregon"},         {"PA", "Pennsylvania"},
    {"RI", "Rhode Island"},   {"SC", "South Carolina"}, {"SD", "South Dakota"},
    {"TN", "Tennessee"},      {"TX", "Texas"},          {"UT", "Utah"},
    {"VT", "Vermont"},        {"VA", "Virginia"},       {"WA", "Washington"},
    {"WV", "West Virginia"},  {"WI", "Wisconsin"},      {"WY", "Wyoming"},
};

static const ProfileValueSet states_set = {"US states", sizeof(states) / sizeof(states[0]), states};

const ProfileValueSet *profile_valueset_states(void)
{
    return &states_set;
}

/* v with surrounding blanks removed; malloc'd. */
static char *trimmed(const char *v)
{
    size_t n;

    while (*v && isspace((unsigned char)*v))
        v++;
    n = strlen(v);
    while (n && isspace((unsigned char)v[n - 1]))
        n--;
    return xstrndup(v, n);
}

int profile_valueset_classify(const ProfileValueSet *set, const char *v)
{
    char *t = trimmed(v);
    int r = 0;

    for (size_t i = 0; i < set->n && !r; i++) {
        if (strcasecmp(t, set->pairs[i].code) == 0)
            r = 1;
        else if (strcasecmp(t, set->pairs[i].name) == 0)
            r = 2;
    }
    free(t);
    return r;
}

static char *array_of(const ProfileValueSet *set, bool codes)
{
    const char **vals = xcalloc(set->n, sizeof(char *));
    char **owned = xcalloc(set->n, sizeof(char *));
    char *r;

    for (size_t i = 0; i < set->n; i++) {
        owned[i] = xstrdup(codes ? set->pairs[i].code : set->pairs[i].name);
        for (char *p = owned[i]; *p; p++)
            *p = (char)(codes ? toupper((unsigned char)*p) : tolower((unsigned char)*p));
        vals[i] = owned[i];
    }
    r = profile_sql_text_array(vals, set->n);
    for (size_t i = 0; i < set->n; i++)
        free(owned[i]);
    free(owned);
    free(vals);
    return r;
}

char *profile_valueset_codes_array(const ProfileValueSet *set)
{
    return array_of(set, true);
}

char *profile_valueset_names_array(const ProfileValueSet *set)
{
    return array_of(set, false);
}
