/*
 * vgpu-bench-calls: counts the commands in host request traces, per command id.
 *
 * The host library records every request it serves when GGML_VIRTGPU_TRACE=PREFIX is set in
 * the server's environment (host/trace.h): PREFIX.<pid>.<ctx>.requests holds one record
 * {u32 cmd, u32 len, len bytes} per command. bench/calls.sh traces two runs that differ only
 * in the number of generated tokens and divides the difference by it: commands per token.
 *
 * Usage: vgpu-bench-calls FILE...
 * Prints "id name count bytes" per command id present (ids in increasing order) and a last
 * line "- total count bytes". Exit status: 0, 1 a file could not be read or ends inside a
 * record, 2 usage.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ext.h"

#define MAX_ID 1024

static const char *name_of(uint32_t id)
{
    switch (id) {
    case VGPU_CMD_EXT_HELLO: return "EXT_HELLO";
    case VGPU_CMD_EXT_DEVICE_INFO: return "EXT_DEVICE_INFO";
    case VGPU_CMD_EXT_DEVICE_MEMORY: return "EXT_DEVICE_MEMORY";
    case VGPU_CMD_EXT_BUFFER_ALLOC: return "EXT_BUFFER_ALLOC";
    case VGPU_CMD_EXT_BUFFER_FREE: return "EXT_BUFFER_FREE";
    case VGPU_CMD_EXT_BUFFER_CLEAR: return "EXT_BUFFER_CLEAR";
    case VGPU_CMD_EXT_TENSOR_SET: return "EXT_TENSOR_SET";
    case VGPU_CMD_EXT_TENSOR_GET: return "EXT_TENSOR_GET";
    case VGPU_CMD_EXT_TENSOR_MEMSET: return "EXT_TENSOR_MEMSET";
    case VGPU_CMD_EXT_TENSOR_COPY: return "EXT_TENSOR_COPY";
    case VGPU_CMD_EXT_TENSOR_INIT: return "EXT_TENSOR_INIT";
    case VGPU_CMD_EXT_GET_ALLOC_SIZE: return "EXT_GET_ALLOC_SIZE";
    case VGPU_CMD_EXT_SUPPORTS_OP: return "EXT_SUPPORTS_OP";
    case VGPU_CMD_EXT_OFFLOAD_OP: return "EXT_OFFLOAD_OP";
    case VGPU_CMD_EXT_GRAPH_COMPUTE: return "EXT_GRAPH_COMPUTE";
    case VGPU_CMD_EXT_GRAPH_OPTIMIZE: return "EXT_GRAPH_OPTIMIZE";
    case VGPU_CMD_EXT_SET_N_THREADS: return "EXT_SET_N_THREADS";
    case VGPU_CMD_EXT_NOP: return "EXT_NOP";
    default: return id < VGPU_CMD_EXT_FIRST ? "baseline" : "ext";
    }
}

/* Adds the records of one trace file; 0 or -1 (message printed). */
static int count_file(const char *path, uint64_t *count, uint64_t *bytes)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "vgpu-bench-calls: %s: %s\n", path, strerror(errno));
        return -1;
    }
    uint32_t head[2];
    int rc = 0;
    while (fread(head, sizeof(head), 1, f) == 1) {
        uint32_t id = head[0] < MAX_ID ? head[0] : MAX_ID - 1;
        count[id]++;
        bytes[id] += head[1];
        if (head[1] && fseek(f, (long)head[1], SEEK_CUR) != 0) {
            rc = -1;
            break;
        }
    }
    if (rc == 0 && (ferror(f) || !feof(f)))
        rc = -1;
    /* fseek past the end succeeds; a truncated last record shows as a position past the size. */
    long pos = ftell(f);
    if (rc == 0 && fseek(f, 0, SEEK_END) == 0 && ftell(f) < pos)
        rc = -1;
    if (rc != 0)
        fprintf(stderr, "vgpu-bench-calls: %s: truncated or unreadable\n", path);
    fclose(f);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: vgpu-bench-calls TRACE.requests...\n");
        return 2;
    }
    static uint64_t count[MAX_ID], bytes[MAX_ID];
    int status = 0;
    for (int i = 1; i < argc; i++)
        if (count_file(argv[i], count, bytes) != 0)
            status = 1;
    uint64_t total = 0, total_bytes = 0;
    for (uint32_t id = 0; id < MAX_ID; id++) {
        if (!count[id])
            continue;
        printf("%u %s %llu %llu\n", id, name_of(id), (unsigned long long)count[id], (unsigned long long)bytes[id]);
        total += count[id];
        total_bytes += bytes[id];
    }
    printf("- total %llu %llu\n", (unsigned long long)total, (unsigned long long)total_bytes);
    return status;
}
