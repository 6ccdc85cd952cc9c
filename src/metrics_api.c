/*
 * metrics_api.c - rl_metrics_write() and rl_metrics_render(): the library's
 * Prometheus text for programs that embed it (metrics.c renders).
 */
#include <string.h>

#include "metrics.h"
#include "redis_store.h"

int rl_metrics_write(rl_limiter *rl, rl_write_fn write, void *ctx) {
  if (rl == NULL || write == NULL) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  rl__limiter_refresh_gauges(rl);
  return rl__metrics_write(rl__limiter_metrics(rl), write, ctx);
}

/* Copies what fits (keeping room for the NUL) and counts everything. */
typedef struct sink {
  char *buf;
  size_t cap;
  size_t len; /* full length so far */
} sink;

static int sink_write(void *ctx, const char *data, size_t len) {
  sink *k = ctx;
  if (k->len + 1 < k->cap) {
    size_t room = k->cap - 1 - k->len;
    memcpy(k->buf + k->len, data, len < room ? len : room);
  }
  k->len += len;
  return 0;
}

int rl_metrics_render(rl_limiter *rl, char *buf, size_t len, size_t *needed) {
  if (rl == NULL || (buf == NULL && len > 0)) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  sink k = {buf, len, 0};
  int err = rl_metrics_write(rl, sink_write, &k);
  if (len > 0) {
    buf[k.len < len ? k.len : len - 1] = '\0';
  }
  if (needed != NULL) {
    *needed = k.len;
  }
  return err;
}
