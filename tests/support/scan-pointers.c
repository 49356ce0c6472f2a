/*
 * scan-pointers: proves that no reply of the host library carried a host address.
 *
 * Usage: scan-pointers TRACE_PREFIX_GLOB_FILES...
 * Arguments are pairs of files written by host/trace.c: X.replies and X.maps (pass the
 * .replies files; the .maps file is found by name). Every mapping ever seen in a snapshot of
 * the host's /proc/self/maps is an address range; every reply is read as 64-bit values at
 * every 4-byte-aligned offset (the slot codec aligns items to 4 bytes, not 8). A value inside
 * any range is a leak. Prints the number of replies and values checked and each hit.
 * Exit status: 0 no hit, 1 a hit, 2 usage or I/O error.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct range {
    uint64_t lo, hi;
};

struct ranges {
    struct range *v;
    size_t        n, cap;
};

/* Adds every "lo-hi ..." line of a maps snapshot file; returns 0 or -1. */
static int load_maps(const char *path, struct ranges *r)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[4096];
    while (fgets(line, sizeof(line), f)) {
        unsigned long long lo, hi;
        if (sscanf(line, "%llx-%llx", &lo, &hi) != 2)
            continue;
        if (r->n == r->cap) {
            size_t cap = r->cap ? 2 * r->cap : 256;
            struct range *v = realloc(r->v, cap * sizeof(*v));
            if (!v) {
                fclose(f);
                return -1;
            }
            r->v = v;
            r->cap = cap;
        }
        r->v[r->n++] = (struct range){ lo, hi };
    }
    fclose(f);
    return 0;
}

static int in_ranges(const struct ranges *r, uint64_t v)
{
    for (size_t i = 0; i < r->n; i++)
        if (v >= r->v[i].lo && v < r->v[i].hi)
            return 1;
    return 0;
}

/* Scans one .replies file against ranges; returns the number of hits, or -1 on error. */
static long scan(const char *path, const struct ranges *r, unsigned long *replies, unsigned long *values)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    long hits = 0;
    uint32_t head[3];
    uint8_t *buf = NULL;
    size_t cap = 0;
    while (fread(head, sizeof(head), 1, f) == 1) {
        uint32_t len = head[2];
        if (len > cap) {
            uint8_t *b = realloc(buf, len);
            if (!b) {
                hits = -1;
                break;
            }
            buf = b;
            cap = len;
        }
        if (len && fread(buf, 1, len, f) != len) {
            hits = -1;
            break;
        }
        (*replies)++;
        for (uint32_t off = 0; off + 8 <= len; off += 4) {
            uint64_t v;
            memcpy(&v, buf + off, 8);
            (*values)++;
            if (v && in_ranges(r, v)) {
                printf("HIT %s: command %u (code %u), reply offset %u: 0x%016" PRIx64 "\n", path, head[0],
                       head[1], off, v);
                hits++;
            }
        }
    }
    free(buf);
    fclose(f);
    return hits;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: scan-pointers FILE.replies...\n");
        return 2;
    }
    long hits = 0;
    unsigned long replies = 0, values = 0;
    for (int i = 1; i < argc; i++) {
        struct ranges r = { 0 };
        char maps[4096];
        size_t n = strlen(argv[i]);
        if (n < 8 || strcmp(argv[i] + n - 8, ".replies") != 0 || n > sizeof(maps) - 8) {
            fprintf(stderr, "scan-pointers: %s is not a .replies file\n", argv[i]);
            return 2;
        }
        snprintf(maps, sizeof(maps), "%.*s.maps", (int)(n - 8), argv[i]);
        if (load_maps(maps, &r) != 0 || r.n == 0) {
            fprintf(stderr, "scan-pointers: cannot read %s\n", maps);
            return 2;
        }
        long h = scan(argv[i], &r, &replies, &values);
        free(r.v);
        if (h < 0) {
            fprintf(stderr, "scan-pointers: cannot read %s\n", argv[i]);
            return 2;
        }
        hits += h;
    }
    printf("scanned %lu replies, %lu values: %ld host addresses\n", replies, values, hits);
    return hits ? 1 : 0;
}
