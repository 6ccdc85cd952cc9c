/*
 * lease_script.c - building the lease and return commands and reading the
 * lease reply (lease_script.h; the scripts' arguments are documented at
 * the top of lua/lease.lua and lua/lease_return.lua).
 */
#include <string.h>

#include "lease_script.h"
#include "lua_scripts.h"
#include "redis_store.h"
#include "resp.h"

static void set_num(rl__script_cmd *cmd, int i, uint64_t v) {
  cmd->lens[i] = rl__put_u64(cmd->nums[i], v);
  cmd->argv[i] = cmd->nums[i];
}

static void set_str(rl__script_cmd *cmd, int i, const char *s) {
  cmd->argv[i] = s;
  cmd->lens[i] = strlen(s);
}

/* EVALSHA <sha> 1 <key> <alg> <vals...> <cost> <n> windows...; with
 * push_key, EVALSHA <sha> 2 <key> <push key> <alg> ... (lua/lease.lua's
 * push point of a token bucket, in the key's hash slot); argv[0..1] are
 * the store's to fill. */
static int build(rl__lease_cmd *c, const char *script, const rl__policy *p,
                 const void *key, size_t key_len, const uint64_t *vals,
                 int n_vals, uint64_t cost, int push_key) {
  rl__script_cmd *cmd = &c->cmd;
  char part[RL__REDIS_POLICY_PART_MAX];
  size_t part_len =
      rl__redis_policy_part(p->name, p->name_len, p->layout, part);
  size_t klen = 0;
  int err =
      rl__redis_key(part, part_len, key, key_len, c->key, sizeof c->key, &klen);
  if (err != RL_OK) {
    return err;
  }
  const rl__script *s = rl__script_find(script);
  cmd->script = (size_t)(s - rl__scripts);
  set_str(cmd, 0, "EVALSHA");
  set_str(cmd, 1, s->sha1);
  set_str(cmd, 2, push_key ? "2" : "1");
  cmd->argv[3] = c->key;
  cmd->lens[3] = klen;
  int i = 4;
  if (push_key) { /* rl:{...}:... -> rlp:{...}:...: same slot, and no
                     state key starts so */
    memcpy(c->push_key, "rlp", 3);
    memcpy(c->push_key + 3, c->key + 2, klen - 2);
    cmd->argv[i] = c->push_key;
    cmd->lens[i++] = klen + 1;
  }
  set_str(cmd, i++, rl_algorithm_name(p->shape.algorithm));
  for (int v = 0; v < n_vals; v++) {
    set_num(cmd, i++, vals[v]);
  }
  set_num(cmd, i++, cost);
  set_num(cmd, i++, p->shape.n_windows);
  for (size_t w = 0; w < p->shape.n_windows; w++) {
    const rl__window_params *wp = &p->shape.windows[w];
    set_num(cmd, i++, wp->limit);
    set_num(cmd, i++, wp->duration_ms);
    set_num(cmd, i++, wp->burst);
    set_num(cmd, i++, wp->log_slots);
  }
  cmd->argc = i;
  return RL_OK;
}

int rl__lease_cmd_build(rl__lease_cmd *c, const rl__policy *p, const void *key,
                        size_t key_len, uint64_t want, uint64_t hold_ms,
                        uint64_t push_ms, uint64_t cost) {
  const uint64_t vals[] = {want, hold_ms, push_ms};
  return build(c, "lease", p, key, key_len, vals, 3, cost,
               p->shape.algorithm == RL_ALG_TOKEN_BUCKET);
}

int rl__lease_return_build(rl__lease_cmd *c, const rl__policy *p,
                           const void *key, size_t key_len, uint64_t units,
                           int64_t granted_at) {
  const uint64_t vals[] = {units, (uint64_t)(granted_at > 0 ? granted_at : 0)};
  return build(c, "lease_return", p, key, key_len, vals, 2, 1, 0);
}

/* lease: <alg> want hold push cost n windows...; its return: <alg> units
 * granted_at cost n windows...: one argument fewer, the rest moved down. */
void rl__lease_cmd_to_return(rl__lease_cmd *c, uint64_t units,
                             int64_t granted_at) {
  rl__script_cmd *cmd = &c->cmd;
  const rl__script *s = rl__script_find("lease_return");
  cmd->script = (size_t)(s - rl__scripts);
  set_str(cmd, 1, s->sha1);
  for (int i = 7; i + 1 < cmd->argc; i++) { /* all numbers from 5 on */
    memcpy(cmd->nums[i], cmd->nums[i + 1], sizeof cmd->nums[i]);
    cmd->argv[i] = cmd->nums[i];
    cmd->lens[i] = cmd->lens[i + 1];
  }
  cmd->argc--;
  set_num(cmd, 5, units);
  set_num(cmd, 6, (uint64_t)(granted_at > 0 ? granted_at : 0));
}

int rl__lease_reply_parse(const rl__redis_reply *r, void *out) {
  rl__lease_reply *o = out;
  if (r->type != RL__REPLY_ARRAY || r->elements != 9) {
    return RL_ERR_BACKEND_UNAVAILABLE;
  }
  long long v[9];
  for (size_t i = 0; i < 9; i++) {
    if (r->element[i].type != RL__REPLY_INTEGER) {
      return RL_ERR_BACKEND_UNAVAILABLE;
    }
    v[i] = r->element[i].integer;
  }
  if ((v[0] != 0 && v[0] != 1) || v[1] < 0 || v[1] >= RL_MAX_WINDOWS ||
      v[2] < 1 || v[3] < 0 || v[4] < 0 || v[5] < -1 || v[6] < 0 || v[7] < 0 ||
      v[8] < 0) {
    return RL_ERR_BACKEND_UNAVAILABLE;
  }
  memset(&o->d, 0, sizeof o->d);
  o->d.allowed = (int)v[0];
  o->d.window = (int)v[1];
  o->d.limit = (uint64_t)v[2];
  o->d.remaining = (uint64_t)v[3];
  o->d.reset_after_ms = (uint64_t)v[4];
  o->d.retry_after_ms = v[5] < 0 ? RL_RETRY_NEVER : (uint64_t)v[5];
  o->now_ms = v[6];
  o->granted = (uint64_t)v[7];
  o->valid_ms = (uint64_t)v[8];
  return RL_OK;
}
