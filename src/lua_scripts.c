/*
 * lua_scripts.c - lookups in the table of embedded Lua scripts (the table
 * itself is generated: cmake/embed_lua.cmake).
 */
#include <stddef.h>
#include <string.h>

#include "lua_scripts.h"

const rl__script *rl__script_find(const char *name) {
  if (name == NULL) {
    return NULL;
  }
  for (size_t i = 0; i < rl__n_scripts; i++) {
    if (strcmp(rl__scripts[i].name, name) == 0) {
      return &rl__scripts[i];
    }
  }
  return NULL;
}

const rl__script *rl__script_for(rl_algorithm alg) {
  switch (alg) {
  case RL_ALG_SLIDING_LOG:
    return rl__script_find("sliding_log");
  case RL_ALG_SLIDING_COUNTER:
    return rl__script_find("sliding_counter");
  case RL_ALG_TOKEN_BUCKET:
    return rl__script_find("gcra");
  case RL_ALG_FIXED_WINDOW:
    return rl__script_find("fixed_window");
  }
  return NULL;
}

const rl__script *rl__script_multi(void) {
  return rl__script_find("multi_window");
}
