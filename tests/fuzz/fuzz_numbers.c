/*
 * fuzz_numbers.c - the command line's number parsers (util.h): sizes with
 * K/M/G/T suffixes, signed and unsigned integers. The input is cut at each
 * NUL or newline into candidate arguments. Checked: no crash, and a value
 * that parses prints back to text that parses to the same value.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static void one(const char *s)
{
    uint64_t u = 0, u2 = 0;
    long long ll = 0, ll2 = 0;
    char buf[64];
    if (mpm__parse_u64(s, &u) == 0) {
        snprintf(buf, sizeof buf, "%" PRIu64, u);
        if (mpm__parse_u64(buf, &u2) != 0 || u2 != u) abort();
    }
    if (mpm__parse_ll(s, &ll) == 0) {
        snprintf(buf, sizeof buf, "%lld", ll);
        if (mpm__parse_ll(buf, &ll2) != 0 || ll2 != ll) abort();
    }
    if (mpm__parse_size(s, &u) == 0) {
        snprintf(buf, sizeof buf, "%" PRIu64, u);
        if (mpm__parse_size(buf, &u2) != 0 || u2 != u) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    for (char *p = s, *q; p <= s + size; p = q + 1) {
        q = p + strcspn(p, "\n");
        *q = 0;
        one(p);
        if (q >= s + size) break;
    }
    free(s);
    return 0;
}
