/*
 * errors.c - names and messages for the public enums: error codes (from the
 * one RL_ERRNO_MAP list), decision sources and algorithms.
 */
#include <string.h>

#include "ratelimiter.h"

#ifndef RL_VERSION_STRING
#define RL_VERSION_STRING "0.0.0"
#endif

const char *rl_strerror(int err) {
  switch (err) {
#define RL__ERR_MSG(name, label, num, msg)                                     \
  case RL_ERR_##name:                                                          \
    return msg;
    RL_ERRNO_MAP(RL__ERR_MSG)
#undef RL__ERR_MSG
  default:
    return "unknown error";
  }
}

const char *rl_err_name(int err) {
  switch (err) {
#define RL__ERR_LABEL(name, label, num, msg)                                   \
  case RL_ERR_##name:                                                          \
    return #label;
    RL_ERRNO_MAP(RL__ERR_LABEL)
#undef RL__ERR_LABEL
  default:
    return "unknown";
  }
}

const char *rl_source_name(rl_source source) {
  switch (source) {
#define RL__SOURCE_LABEL(name, label)                                          \
  case RL_SOURCE_##name:                                                       \
    return #label;
    RL_SOURCE_MAP(RL__SOURCE_LABEL)
#undef RL__SOURCE_LABEL
  default:
    return "unknown";
  }
}

static const char *const algorithm_names[] = {
    [RL_ALG_SLIDING_LOG] = "sliding_log",
    [RL_ALG_SLIDING_COUNTER] = "sliding_counter",
    [RL_ALG_TOKEN_BUCKET] = "token_bucket",
    [RL_ALG_FIXED_WINDOW] = "fixed_window",
};
#define N_ALGORITHMS (sizeof algorithm_names / sizeof algorithm_names[0])

const char *rl_algorithm_name(rl_algorithm alg) {
  if ((unsigned)alg >= N_ALGORITHMS) {
    return NULL;
  }
  return algorithm_names[alg];
}

int rl_algorithm_parse(const char *name, size_t len, rl_algorithm *out) {
  if (name == NULL || out == NULL) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  for (size_t i = 0; i < N_ALGORITHMS; i++) {
    if (strlen(algorithm_names[i]) == len &&
        memcmp(algorithm_names[i], name, len) == 0) {
      *out = (rl_algorithm)i;
      return RL_OK;
    }
  }
  return RL_ERR_ALGORITHM_UNKNOWN;
}

const char *rl_version(void) {
  return RL_VERSION_STRING;
}
