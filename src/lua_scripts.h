/*
 * lua_scripts.h - the Lua scripts of the Redis store, embedded at build
 * time.
 *
 * lua/<name>.lua, with the shared code of lua/lib/ pasted in by
 * cmake/embed_lua.cmake, becomes one entry of rl__scripts[] (generated into
 * the build directory, never committed). The calling convention of every
 * script is in docs/Redis.md and at the top of each script in lua/.
 */
#ifndef RL_LUA_SCRIPTS_H
#define RL_LUA_SCRIPTS_H

#include <stddef.h>

#include "ratelimiter.h"

typedef struct rl__script {
  const char *name;   /* "sliding_log", "sliding_counter", "gcra",
                         "fixed_window", "multi_window" */
  const char *source; /* the whole script, NUL-terminated */
  size_t len;         /* strlen(source) */
  const char *sha1;   /* 40 lowercase hex digits: what EVALSHA takes */
} rl__script;

extern const rl__script rl__scripts[];
extern const size_t rl__n_scripts;

/* The script named name (NUL-terminated); NULL if none. */
const rl__script *rl__script_find(const char *name);

/* The per-algorithm script of alg (1..8 windows of that algorithm); NULL
 * for an unknown value. */
const rl__script *rl__script_for(rl_algorithm alg);

/* multi_window.lua: the algorithm is its first argument. */
const rl__script *rl__script_multi(void);

#endif /* RL_LUA_SCRIPTS_H */
