/*
 * gencorpus.c - writes a deterministic synthetic English-like text corpus for
 * the default job and the benchmarks: a vocabulary of pronounceable words
 * drawn with a Zipf(1) law (like natural text), lines of 6-18 words, some
 * capitalised, some followed by punctuation, and a few UTF-8 words.
 *
 *   mpimap-gencorpus SIZE [SEED] > corpus.txt     (SIZE with K/M/G suffix)
 *
 * Same SIZE and SEED give the same bytes on every machine.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VOCAB 100000

static uint64_t rng_state;
static uint64_t next(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static double unif(void) { return (double)(next() >> 11) * (1.0 / 9007199254740992.0); }

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s) return -1;
    switch (*end) {
    case 'k': case 'K': v <<= 10; end++; break;
    case 'm': case 'M': v <<= 20; end++; break;
    case 'g': case 'G': v <<= 30; end++; break;
    default: break;
    }
    if (*end == 'i' || *end == 'B') end++;
    if (*end == 'B') end++;
    if (*end) return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t size;
    if (argc < 2 || argc > 3 || parse_size(argv[1], &size) < 0) {
        fprintf(stderr, "usage: mpimap-gencorpus SIZE[K|M|G] [SEED] > FILE\n");
        return 2;
    }
    rng_state = argc == 3 ? strtoull(argv[2], NULL, 10) : 42;
    static const char *on[] = {"b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r",
                               "s", "t", "v", "w", "st", "tr", "ch", "sh", "th", "pl", "gr", ""};
    static const char *nu[] = {"a", "e", "i", "o", "u", "ou", "ea", "ai", "io", "y"};
    static const char *co[] = {"", "", "n", "r", "s", "t", "l", "nd", "ng", "ck", "rm", "st"};
    static const char *utf8[] = {"caf\xc3\xa9", "na\xc3\xafve", "\xc3\xbc" "ber", "stra\xc3\x9f" "e",
                                 "\xce\xbb\xcf\x8c\xce\xb3\xce\xbf\xcf\x82"};
    char (*words)[24] = malloc(sizeof *words * VOCAB);
    double *cdf = malloc(sizeof *cdf * VOCAB);
    if (!words || !cdf) return 1;
    for (int i = 0; i < VOCAB; i++) {
        if (i > 0 && i % 997 == 0) {
            snprintf(words[i], sizeof words[i], "%s", utf8[(i / 997) % 5]);
            continue;
        }
        int syl = 1 + (int)(next() % (i < 100 ? 2 : i < 5000 ? 3 : 4));
        words[i][0] = 0;
        for (int s = 0; s < syl; s++) {
            strcat(words[i], on[next() % 24]);
            strcat(words[i], nu[next() % 10]);
            if (s == syl - 1 || next() % 3 == 0) strcat(words[i], co[next() % 12]);
        }
    }
    double sum = 0;
    for (int i = 0; i < VOCAB; i++) cdf[i] = (sum += 1.0 / (i + 1));
    for (int i = 0; i < VOCAB; i++) cdf[i] /= sum;

    static char out[1 << 16];
    size_t o = 0;
    uint64_t written = 0;
    int col = 0, line_words = 6 + (int)(next() % 13);
    while (written < size) {
        double u = unif();
        int lo = 0, hi = VOCAB - 1;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (cdf[mid] < u) lo = mid + 1;
            else hi = mid;
        }
        const char *w = words[lo];
        size_t l = strlen(w);
        char tmp[32];
        memcpy(tmp, w, l + 1);
        if (col == 0 || next() % 20 == 0) tmp[0] = (char)(tmp[0] >= 'a' && tmp[0] <= 'z' ? tmp[0] - 32 : tmp[0]);
        if (col) out[o++] = ' ';
        memcpy(out + o, tmp, l);
        o += l;
        uint64_t r = next() % 40;
        if (r == 0) out[o++] = ',';
        else if (r == 1) out[o++] = ';';
        if (++col >= line_words) {
            out[o++] = '.';
            out[o++] = '\n';
            col = 0;
            line_words = 6 + (int)(next() % 13);
        }
        if (o > sizeof out - 64) {
            size_t n = o;
            if (written + n > size) n = (size_t)(size - written);
            fwrite(out, 1, n, stdout);
            written += n;
            o = 0;
        }
    }
    free(words);
    free(cdf);
    return ferror(stdout) ? 1 : 0;
}
