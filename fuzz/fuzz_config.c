/*
 * fuzz_config.c - libFuzzer target for the configuration loader: any
 * bytes must give either a configuration that the library accepts or an
 * error message naming file, line and column; never a crash, a leak or a
 * hang (the YAML walk is bounded, aliases included).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[512];
  rld_config *c = NULL;
  err[0] = '\0';
  if (size > RLD_CONFIG_FILE_MAX) {
    return 0;
  }
  if (rld_config_parse((const char *)data, size, "fuzz.yaml", &c, err,
                       sizeof err) == 0) {
    rl_policy *p = calloc(c->n_policies, sizeof *p);
    rl_config rc;
    if (p != NULL) {
      rld_config_to_rl(c, p, &rc);
      if (c->n_policies == 0 || rl_config_check(&rc, NULL, 0) != RL_OK) {
        abort(); /* accepted, so the library must accept it too */
      }
    }
    free(p);
    rld_config_free(c);
  } else if (strncmp(err, "fuzz.yaml", 9) != 0) {
    abort(); /* every error names the file */
  }
  return 0;
}
