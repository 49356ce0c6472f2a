/*
 * Logging of ggml-virtgpu-server: one line per message on stderr,
 * "ggml-virtgpu-server[pid]: level: message", written with a single write(2) so that lines
 * of concurrent workers and threads never interleave.
 */
#ifndef SRV_LOG_H
#define SRV_LOG_H

enum srv_log_level {
    SRV_LOG_ERROR = 0,
    SRV_LOG_WARN  = 1,
    SRV_LOG_INFO  = 2,
    SRV_LOG_DEBUG = 3,
};

/*
 * Sets the threshold: messages above `level` are dropped. Write-once configuration: call it
 * at start-up before any thread or worker exists (the default is SRV_LOG_INFO).
 */
void srv_log_set_level(enum srv_log_level level);

/* The current threshold. */
enum srv_log_level srv_log_get_level(void);

/* Parses "error", "warn", "info" or "debug" into *level; returns 0, or -EINVAL if unknown. */
int srv_log_parse_level(const char *name, enum srv_log_level *level);

/* The option spelling of a level ("error", ...); never NULL. */
const char *srv_log_level_name(enum srv_log_level level);

/* Logs one message at `level` if the threshold allows it; never fails, never blocks long. */
void srv_log(enum srv_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define SRV_ERROR(...) srv_log(SRV_LOG_ERROR, __VA_ARGS__)
#define SRV_WARN(...)  srv_log(SRV_LOG_WARN, __VA_ARGS__)
#define SRV_INFO(...)  srv_log(SRV_LOG_INFO, __VA_ARGS__)
#define SRV_DEBUG(...) srv_log(SRV_LOG_DEBUG, __VA_ARGS__)

#endif /* SRV_LOG_H */
