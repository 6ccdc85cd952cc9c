/*
 * config_check.h - semantic checks of a parsed configuration, shared by the
 * YAML loader (which adds the position) and the tests.
 */
#ifndef RLD_CONFIG_CHECK_H
#define RLD_CONFIG_CHECK_H

#include "config.h"

/* 0 if name (len bytes) is 1..RL_POLICY_NAME_MAX of [A-Za-z0-9_.-]: safe
 * in a header string, in JSON and as a metric label without escaping. */
int rld_check_policy_name(const char *name, size_t len);

/* The library's verdict on one policy (windows, limits, algorithm) in the
 * context of cfg's store settings. 0, or -1 with a reason in why. */
int rld_check_policy(const rld_config *cfg, const rld_policy *p, char *why,
                     size_t whylen);

/* The library's verdict on the whole configuration (e.g. the memory budget
 * against the largest key). 0, or -1 with "FILE:LINE:1: reason" in err. */
int rld_check_config(const rld_config *cfg, size_t line, const char *file,
                     char *err, size_t errlen);

#endif /* RLD_CONFIG_CHECK_H */
