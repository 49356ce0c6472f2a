/*
 * Logging of ggml-virtgpu-server; contracts in log.h.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SRV_LOG_LINE_MAX 1024

static const char *const level_names[] = { "error", "warn", "info", "debug" };

/* Write-once threshold (set at start-up); atomic so that reading it from threads is defined. */
static _Atomic int log_threshold = SRV_LOG_INFO;

void srv_log_set_level(enum srv_log_level level)
{
    atomic_store_explicit(&log_threshold, (int)level, memory_order_relaxed);
}

enum srv_log_level srv_log_get_level(void)
{
    return (enum srv_log_level)atomic_load_explicit(&log_threshold, memory_order_relaxed);
}

int srv_log_parse_level(const char *name, enum srv_log_level *level)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *level = (enum srv_log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *srv_log_level_name(enum srv_log_level level)
{
    if ((unsigned)level >= sizeof(level_names) / sizeof(level_names[0]))
        return "info";
    return level_names[level];
}

/*
 * Writes all n bytes of buf to stderr, retrying on EINTR and short writes; gives up silently
 * on any other error (logging must never fail its caller).
 */
static void write_all_stderr(const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        buf += w;
        n -= (size_t)w;
    }
}

void srv_log(enum srv_log_level level, const char *fmt, ...)
{
    if ((int)level > atomic_load_explicit(&log_threshold, memory_order_relaxed))
        return;
    int saved_errno = errno;
    char line[SRV_LOG_LINE_MAX];
    int head = snprintf(line, sizeof(line), "ggml-virtgpu-server[%ld]: %s: ", (long)getpid(),
                        srv_log_level_name(level));
    if (head < 0 || (size_t)head >= sizeof(line))
        head = 0;
    va_list ap;
    va_start(ap, fmt);
    int body = vsnprintf(line + head, sizeof(line) - (size_t)head, fmt, ap);
    va_end(ap);
    size_t len = (size_t)head + (body > 0 ? (size_t)body : 0);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2; /* truncated: keep room for the newline */
    line[len++] = '\n';
    write_all_stderr(line, len);
    errno = saved_errno;
}
