/*
 * config_check.c - what the YAML grammar cannot say: policy names safe to
 * echo anywhere, and the library's own validation (rl_config_check), run
 * on the parsed configuration before anything is built from it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_check.h"

int rld_check_policy_name(const char *name, size_t len) {
  if (len == 0 || len > RL_POLICY_NAME_MAX) {
    return -1;
  }
  for (size_t i = 0; i < len; i++) {
    char ch = name[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-')) {
      return -1;
    }
  }
  return 0;
}

int rld_check_policy(const rld_config *cfg, const rld_policy *p, char *why,
                     size_t whylen) {
  rl_policy one = p->policy;
  one.name = p->name;
  rl_config rc;
  rl_config_init(&rc);
  rc.policies = &one;
  rc.n_policies = 1;
  rc.memory.max_bytes = cfg->memory_max_bytes;
  rc.max_key_len = cfg->max_key_len;
  char detail[200];
  int err = rl_config_check(&rc, detail, sizeof detail);
  if (err != RL_OK) {
    snprintf(why, whylen, "policy '%s': %s (%s)", p->name, detail,
             rl_err_name(err));
    return -1;
  }
  return 0;
}

int rld_check_config(const rld_config *cfg, size_t line, const char *file,
                     char *err, size_t errlen) {
  rl_policy *policies = calloc(cfg->n_policies, sizeof *policies);
  if (policies == NULL) {
    snprintf(err, errlen, "%s: out of memory", file);
    return -1;
  }
  rl_config rc;
  rld_config_to_rl(cfg, policies, &rc);
  char detail[200];
  int rc_err = rl_config_check(&rc, detail, sizeof detail);
  free(policies);
  if (rc_err != RL_OK) {
    snprintf(err, errlen, "%s:%zu:1: %s (%s)", file, line, detail,
             rl_err_name(rc_err));
    return -1;
  }
  return 0;
}
