/*
 * test_lua_scripts.c - the Lua scripts of the Redis store (lua/), run by a
 * real redis-server, against the C algorithms (src/algorithm.h).
 *
 * The test starts its own redis-server on a free 127.0.0.1 port and talks
 * to it with hiredis' synchronous API. Cases:
 *   - the embedded scripts load and their SHA1 is the one Redis computes;
 *   - lib/num.lua's exact arithmetic at the edges, against __int128;
 *   - differential: random request sequences (several keys, costs, 1..3
 *     windows of 5..200 ms, short sleeps so time moves), each sent with
 *     EVALSHA in a MULTI with GET and PTTL; the same (now, cost) goes to
 *     rl__policy_decide() on a C copy of the state; decisions must be equal
 *     and the stored blob byte-for-byte the C state;
 *   - a denied request changes nothing; every admitted key has a TTL and is
 *     gone after its expiry; bad ARGV is an error reply and writes nothing;
 *   - large numbers: crafted states with limits up to 2^40, windows up to
 *     the maximum, clock-back states, full logs of 1024 entries.
 *
 * RL_TEST_SEED=<n> replays a run (the seed is printed). Fails when there is
 * no redis-server (scripts/deps.sh installs it): a missing server must not
 * pass as a skip.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "test_util.h"

#include "algorithm.h"
#include "compiled_policy.h"
#include "lease_script.h"
#include "lua_scripts.h"
#include "policy.h"
#include "redis_keys.h"
#include "saturate.h"

#ifndef RL_REDIS_SERVER
#define RL_REDIS_SERVER "redis-server"
#endif
#ifndef RL_LUA_SOURCE_DIR
#define RL_LUA_SOURCE_DIR "lua"
#endif

#define STATE_MAX (RL_MAX_WINDOWS * (16 + 8 * RL_LOG_SLOTS_MAX))
#define TWO40 (UINT64_C(1) << 40)
/* Slack for TTL upper bounds: scheduling delays on a loaded machine. */
#define TTL_SLACK_MS 250

/* ------------------------------------------------------------------------ */
/* The server                                                               */
/* ------------------------------------------------------------------------ */

static pid_t server_pid;
static redisContext *rc;
static uint64_t rng_state;
/* Requests checked against C, by outcome, for the summary. */
static unsigned long n_requests, n_denied, n_never, n_expired;

/* A port that was free a moment ago. */
static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    return -1;
  }
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = -1;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

static pid_t spawn_server(int port) {
  char portbuf[16];
  snprintf(portbuf, sizeof portbuf, "%d", port);
  pid_t pid = fork();
  if (pid != 0) {
    return pid;
  }
  /* The server must not outlive a test that crashes. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int devnull = open("/dev/null", O_WRONLY);
  if (devnull >= 0) {
    dup2(devnull, STDOUT_FILENO);
    dup2(devnull, STDERR_FILENO);
  }
  execl(RL_REDIS_SERVER, "redis-server", "--port", portbuf, "--bind",
        "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no",
        (char *)NULL);
  _exit(127);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void stop_server(void) {
  if (rc != NULL) {
    redisFree(rc);
    rc = NULL;
  }
  if (server_pid > 0) {
    kill(server_pid, SIGTERM);
    waitpid(server_pid, NULL, 0);
    server_pid = 0;
  }
}

/* Starts redis-server and connects; a few tries in case a port is taken
 * between free_port() and the server's bind. */
static int start_server(void) {
  for (int attempt = 0; attempt < 5; attempt++) {
    int port = free_port();
    if (port <= 0) {
      continue;
    }
    server_pid = spawn_server(port);
    if (server_pid < 0) {
      return -1;
    }
    for (int i = 0; i < 100; i++) {
      sleep_ms(20);
      if (waitpid(server_pid, NULL, WNOHANG) == server_pid) {
        server_pid = 0;
        break;
      }
      rc = redisConnect("127.0.0.1", port);
      if (rc != NULL && rc->err == 0) {
        redisReply *r = redisCommand(rc, "PING");
        int ok = r != NULL && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        if (ok) {
          return 0;
        }
      }
      if (rc != NULL) {
        redisFree(rc);
        rc = NULL;
      }
    }
    stop_server();
  }
  return -1;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static uint64_t rnd(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * UINT64_C(2685821657736338717);
}

/* Uniform in [lo, hi]. */
static uint64_t rnd_in(uint64_t lo, uint64_t hi) {
  return lo + (hi - lo == UINT64_MAX ? rnd() : rnd() % (hi - lo + 1));
}

static redisReply *cmd_argv(int argc, const char **argv, const size_t *lens) {
  redisReply *r = redisCommandArgv(rc, argc, argv, lens);
  assert_non_null(r);
  return r;
}

/* A command whose arguments are NUL-terminated strings, plus one binary
 * key in the slot marked by a NULL argument. */
static redisReply *cmd_key(const char *key, size_t key_len, const char *a0,
                           const char *a1) {
  const char *argv[3] = {a0, key, a1};
  size_t lens[3] = {strlen(a0), key_len, a1 ? strlen(a1) : 0};
  return cmd_argv(a1 ? 3 : 2, argv, lens);
}

static int64_t server_time_ms(void) {
  redisReply *r = redisCommand(rc, "TIME");
  assert_non_null(r);
  assert_int_equal(r->type, REDIS_REPLY_ARRAY);
  int64_t ms = strtoll(r->element[0]->str, NULL, 10) * 1000 +
               strtoll(r->element[1]->str, NULL, 10) / 1000;
  freeReplyObject(r);
  return ms;
}

static void print_hex(const char *label, const void *p, size_t n) {
  const unsigned char *b = p;
  fprintf(stderr, "%s (%zu bytes):", label, n);
  for (size_t i = 0; i < n; i++) {
    fprintf(stderr, "%s%02x", i % 32 ? "" : "\n  ", b[i]);
  }
  fprintf(stderr, "\n");
}

/* ------------------------------------------------------------------------ */
/* Policies on both sides                                                   */
/* ------------------------------------------------------------------------ */

/* What the script is sent (burst 0 = limit, slots 0 = 32) and the C shape
 * with those defaults filled in. */
typedef struct policy {
  rl__policy_shape shape;
  uint64_t burst_arg[RL_MAX_WINDOWS];
  uint32_t slots_arg[RL_MAX_WINDOWS];
  int via_multi; /* multi_window.lua instead of the per-algorithm script */
} policy;

typedef struct window_arg {
  uint64_t limit, duration, burst;
  uint32_t slots;
} window_arg;

/* Compiles the policy with the library's own rules (policy.c: burst and
 * log_slots defaults, S = min(log_slots, L)); log_slots is w[0].slots for
 * every window, as rl_policy has one. The script is sent either the raw
 * values or the resolved ones, at random: both must decide the same.
 * Returns the rl__policy_compile() result. */
static int policy_init(policy *p, rl_algorithm alg, size_t n,
                       const window_arg *w, int via_multi) {
  memset(p, 0, sizeof *p);
  rl_policy in;
  rl_policy_init(&in);
  in.name = "t";
  in.algorithm = alg;
  in.n_windows = n;
  in.log_slots = w[0].slots;
  for (size_t i = 0; i < n; i++) {
    in.windows[i].limit = w[i].limit;
    in.windows[i].duration_ms = w[i].duration;
    in.windows[i].burst = w[i].burst;
  }
  static rl__policy compiled;
  int err = rl__policy_compile(&in, 0, &compiled, NULL, 0);
  if (err != RL_OK) {
    return err;
  }
  p->shape = compiled.shape;
  p->via_multi = via_multi;
  int resolved = (int)(rnd() % 2);
  for (size_t i = 0; i < n; i++) {
    p->burst_arg[i] = resolved ? p->shape.windows[i].burst : w[i].burst;
    p->slots_arg[i] = resolved ? p->shape.windows[i].log_slots : w[0].slots;
  }
  return RL_OK;
}

static int64_t c_expiry(const policy *p, const unsigned char *state) {
  int64_t e = 0;
  for (size_t i = 0; i < p->shape.n_windows; i++) {
    int64_t w = rl__alg_expiry(p->shape.algorithm, &p->shape.windows[i],
                               state + p->shape.state_offset[i]);
    e = w > e ? w : e;
  }
  return e;
}

/* The arguments of one request: EVALSHA sha 1 key [alg] cost n windows. */
typedef struct request {
  char buf[48][24];
  const char *argv[48];
  size_t lens[48];
  int argc;
} request;

static void req_add(request *q, const char *s, size_t len) {
  q->argv[q->argc] = s;
  q->lens[q->argc] = len;
  q->argc++;
}

static void req_num(request *q, uint64_t v) {
  snprintf(q->buf[q->argc], sizeof q->buf[0], "%" PRIu64, v);
  req_add(q, q->buf[q->argc], strlen(q->buf[q->argc]));
}

static const rl__script *script_of(const policy *p) {
  return p->via_multi ? rl__script_multi() : rl__script_for(p->shape.algorithm);
}

static void build_request(request *q, const policy *p, const char *key,
                          size_t key_len, uint64_t cost) {
  q->argc = 0;
  req_add(q, "EVALSHA", 7);
  req_add(q, script_of(p)->sha1, 40);
  req_add(q, "1", 1);
  req_add(q, key, key_len);
  if (p->via_multi) {
    const char *name = rl_algorithm_name(p->shape.algorithm);
    req_add(q, name, strlen(name));
  }
  req_num(q, cost);
  req_num(q, p->shape.n_windows);
  for (size_t i = 0; i < p->shape.n_windows; i++) {
    req_num(q, p->shape.windows[i].limit);
    req_num(q, p->shape.windows[i].duration_ms);
    req_num(q, p->burst_arg[i]);
    req_num(q, p->slots_arg[i]);
  }
}

/* What one request returned, with the blob and PTTL read atomically after
 * it (MULTI). */
typedef struct outcome {
  long long v[7]; /* allowed, window, limit, remaining, reset, retry, now */
  unsigned char blob[STATE_MAX];
  size_t blob_len;
  int has_blob;
  long long pttl;
} outcome;

static void read_reply(redisReply **out) {
  assert_int_equal(redisGetReply(rc, (void **)out), REDIS_OK);
  assert_non_null(*out);
}

static void send_request(const policy *p, const char *key, size_t key_len,
                         uint64_t cost, outcome *o) {
  request q;
  build_request(&q, p, key, key_len, cost);
  const char *multi = "MULTI";
  const char *exec = "EXEC";
  redisAppendCommandArgv(rc, 1, &multi, NULL);
  redisAppendCommandArgv(rc, q.argc, q.argv, q.lens);
  redisAppendCommand(rc, "GET %b", key, key_len);
  redisAppendCommand(rc, "PTTL %b", key, key_len);
  redisAppendCommandArgv(rc, 1, &exec, NULL);
  redisReply *r;
  for (int i = 0; i < 4; i++) { /* OK, QUEUED x3 */
    read_reply(&r);
    freeReplyObject(r);
  }
  read_reply(&r);
  assert_int_equal(r->type, REDIS_REPLY_ARRAY);
  assert_int_equal(r->elements, 3);
  redisReply *d = r->element[0];
  if (d->type == REDIS_REPLY_ERROR) {
    fprintf(stderr, "script error: %s\n", d->str);
  }
  assert_int_equal(d->type, REDIS_REPLY_ARRAY);
  assert_int_equal(d->elements, 7);
  for (int i = 0; i < 7; i++) {
    assert_int_equal(d->element[i]->type, REDIS_REPLY_INTEGER);
    o->v[i] = d->element[i]->integer;
  }
  redisReply *g = r->element[1];
  o->has_blob = g->type == REDIS_REPLY_STRING;
  o->blob_len = o->has_blob ? g->len : 0;
  assert_true(o->blob_len <= sizeof o->blob);
  if (o->has_blob) {
    memcpy(o->blob, g->str, o->blob_len);
  }
  o->pttl = r->element[2]->integer;
  freeReplyObject(r);
}

/* ------------------------------------------------------------------------ */
/* The differential check of one request                                    */
/* ------------------------------------------------------------------------ */

typedef struct key_ctx {
  policy pol;
  char key[RL__REDIS_KEY_MAX];
  size_t key_len;
  unsigned char state[STATE_MAX]; /* the C copy */
} key_ctx;

static void report_mismatch(const key_ctx *k, uint64_t cost, const outcome *o,
                            const rl_decision *d, const unsigned char *pre) {
  fprintf(stderr,
          "MISMATCH alg=%s windows=%zu multi=%d cost=%" PRIu64
          " now=%lld seed=%" PRIu64 "\n",
          rl_algorithm_name(k->pol.shape.algorithm), k->pol.shape.n_windows,
          k->pol.via_multi, cost, o->v[6], rng_state);
  for (size_t i = 0; i < k->pol.shape.n_windows; i++) {
    const rl__window_params *w = &k->pol.shape.windows[i];
    fprintf(stderr,
            "  window %zu: L=%" PRIu64 " W=%" PRIu64 " B=%" PRIu64 " S=%u\n", i,
            w->limit, w->duration_ms, w->burst, w->log_slots);
  }
  fprintf(stderr, "  lua: %lld %lld %lld %lld %lld %lld\n", o->v[0], o->v[1],
          o->v[2], o->v[3], o->v[4], o->v[5]);
  fprintf(stderr, "  C:   %d %d %" PRIu64 " %" PRIu64 " %" PRIu64 " %lld\n",
          d->allowed, d->window, d->limit, d->remaining, d->reset_after_ms,
          d->retry_after_ms == RL_RETRY_NEVER ? -1LL
                                              : (long long)d->retry_after_ms);
  print_hex("  C state before", pre, k->pol.shape.state_size);
  print_hex("  C state after", k->state, k->pol.shape.state_size);
  if (o->has_blob) {
    print_hex("  redis blob", o->blob, o->blob_len);
  }
}

static int same_decision(const outcome *o, const rl_decision *d) {
  long long retry =
      d->retry_after_ms == RL_RETRY_NEVER ? -1 : (long long)d->retry_after_ms;
  return o->v[0] == d->allowed && o->v[1] == d->window &&
         (uint64_t)o->v[2] == d->limit && (uint64_t)o->v[3] == d->remaining &&
         (uint64_t)o->v[4] == d->reset_after_ms && o->v[5] == retry;
}

/* The blob Redis holds after the request must be the C state: after an
 * admission, the new state; after a denial, the old one (or nothing, if it
 * has expired). */
static int same_state(const key_ctx *k, const outcome *o, int allowed,
                      int64_t pre_expiry) {
  size_t n = k->pol.shape.state_size;
  if (!o->has_blob) {
    return !allowed && o->v[6] >= pre_expiry;
  }
  if (o->blob_len != n || memcmp(o->blob, k->state, n) != 0) {
    return 0;
  }
  if (allowed) {
    /* PX is expiry - now + 1. PTTL in the same MULTI can exceed it only by
     * the time between the script's TIME and its SET (a busy machine may
     * deschedule Redis there). */
    int64_t px = c_expiry(&k->pol, k->state) - o->v[6] + 1;
    if (o->pttl < 0 || o->pttl > px + TTL_SLACK_MS) {
      fprintf(stderr, "PTTL %lld, PX %lld\n", o->pttl, (long long)px);
      return 0;
    }
  }
  return 1;
}

/* Sends one request and checks it against the C decision. */
static void check_request(key_ctx *k, uint64_t cost) {
  static unsigned char pre[STATE_MAX];
  static outcome o;
  send_request(&k->pol, k->key, k->key_len, cost, &o);
  int64_t now = o.v[6];
  size_t n = k->pol.shape.state_size;
  memcpy(pre, k->state, n);
  int64_t pre_expiry = c_expiry(&k->pol, k->state);
  /* An expired state is the all-zero state (the script reads it so). */
  if (now >= pre_expiry) {
    memset(k->state, 0, n);
  }
  rl_decision d;
  memset(&d, 0, sizeof d);
  rl__policy_decide(&k->pol.shape, k->state, now, cost, &d);
  if (!d.allowed) {
    /* A denial writes nothing; the C side may have normalised. */
    memcpy(k->state, pre, n);
  }
  n_requests++;
  n_denied += !d.allowed;
  n_never += d.retry_after_ms == RL_RETRY_NEVER;
  n_expired += now >= pre_expiry && pre_expiry > 0;
  if (!same_decision(&o, &d) || !same_state(k, &o, d.allowed, pre_expiry)) {
    report_mismatch(k, cost, &o, &d, pre);
    fail();
  }
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                    */
/* ------------------------------------------------------------------------ */

static int group_setup(void **state) {
  (void)state;
  const char *seed = getenv("RL_TEST_SEED");
  rng_state = seed ? strtoull(seed, NULL, 10) : (uint64_t)time(NULL);
  if (rng_state == 0) {
    rng_state = 1;
  }
  fprintf(stderr, "test_lua_scripts: RL_TEST_SEED=%" PRIu64 "\n", rng_state);
  if (start_server() != 0) {
    fprintf(stderr, "cannot start %s\n", RL_REDIS_SERVER);
    return -1;
  }
  for (size_t i = 0; i < rl__n_scripts; i++) {
    redisReply *r = redisCommand(rc, "SCRIPT LOAD %b", rl__scripts[i].source,
                                 rl__scripts[i].len);
    if (r == NULL || r->type != REDIS_REPLY_STRING ||
        strcmp(r->str, rl__scripts[i].sha1) != 0) {
      fprintf(stderr, "SCRIPT LOAD %s: %s\n", rl__scripts[i].name,
              r ? r->str : "no reply");
      freeReplyObject(r);
      return -1;
    }
    freeReplyObject(r);
  }
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  fprintf(stderr,
          "test_lua_scripts: %lu requests checked against C: %lu denied "
          "(%lu never), %lu on an expired state\n",
          n_requests, n_denied, n_never, n_expired);
  stop_server();
  return 0;
}

static void flush(void) {
  redisReply *r = redisCommand(rc, "FLUSHALL");
  freeReplyObject(r);
}

/* ------------------------------------------------------------------------ */
/* The scripts and the number helpers                                       */
/* ------------------------------------------------------------------------ */

static void test_scripts_embedded(void **state) {
  (void)state;
  assert_int_equal(rl__n_scripts, 8);
  const char *names[] = {"sliding_log",  "sliding_counter", "gcra",
                         "fixed_window", "multi_window",    "lease",
                         "lease_return", "reconcile"};
  for (size_t i = 0; i < 8; i++) {
    const rl__script *s = rl__script_find(names[i]);
    assert_non_null(s);
    assert_int_equal(strlen(s->source), s->len);
    assert_int_equal(strlen(s->sha1), 40);
    /* Assembled: no include line is left. */
    assert_null(strstr(s->source, "--@include"));
    redisReply *r = redisCommand(rc, "SCRIPT EXISTS %s", s->sha1);
    assert_int_equal(r->element[0]->integer, 1);
    freeReplyObject(r);
  }
  assert_ptr_equal(rl__script_for(RL_ALG_TOKEN_BUCKET),
                   rl__script_find("gcra"));
  assert_ptr_equal(rl__script_multi(), rl__script_find("multi_window"));
  assert_null(rl__script_for((rl_algorithm)42));
  assert_null(rl__script_find("nope"));
  assert_null(rl__script_find(NULL));
}

/* Reads lua/lib/num.lua from the source tree. */
static char *read_num_lua(size_t *len) {
  FILE *f = fopen(RL_LUA_SOURCE_DIR "/lib/num.lua", "rb");
  assert_non_null(f);
  static char buf[65536];
  *len = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[*len] = '\0';
  return buf;
}

/* num.lua plus a driver: for each (op, a, b, d, cap) in ARGV, one result
 * as a decimal string. */
static const char num_driver[] =
    "\nlocal out = {}\n"
    "for i = 1, #ARGV, 5 do\n"
    "  local op = ARGV[i]\n"
    "  local a, b, d, cap = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]),\n"
    "    tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])\n"
    "  local r\n"
    "  if op == 'muldiv' then r = num.muldiv(a, b, d, cap)\n"
    "  elseif op == 'ceil' then r = num.div_ceil(num.mul(a, b), d, cap)\n"
    "  elseif op == 'le' then r = num.mul_le(a, b, d, cap) and 1 or 0\n"
    "  elseif op == 'mod' then r = num.mod(a, d)\n"
    "  elseif op == 'divmod' then\n"
    "    local q, m = num.divmod(num.mul(a, b), d)\n"
    "    r = string.format('%.0f', q) .. ':' .. string.format('%.0f', m)\n"
    "  end\n"
    "  if type(r) == 'number' then r = string.format('%.0f', r) end\n"
    "  out[#out + 1] = r\n"
    "end\n"
    "return out\n";

/* The expected result of one case, as text. */
static void expect_num(const char *op, uint64_t a, uint64_t b, uint64_t d,
                       uint64_t cap, char *out, size_t outlen) {
  rl__u128 p = (rl__u128)a * b;
  if (strcmp(op, "muldiv") == 0) {
    rl__u128 q = p / d;
    snprintf(out, outlen, "%" PRIu64, q > cap ? cap : (uint64_t)q);
  } else if (strcmp(op, "ceil") == 0) {
    rl__u128 q = p / d + (p % d != 0);
    snprintf(out, outlen, "%" PRIu64, q > cap ? cap : (uint64_t)q);
  } else if (strcmp(op, "le") == 0) {
    snprintf(out, outlen, "%d", p <= (rl__u128)d * cap);
  } else if (strcmp(op, "mod") == 0) {
    snprintf(out, outlen, "%" PRIu64, a % d);
  } else {
    snprintf(out, outlen, "%" PRIu64 ":%" PRIu64, (uint64_t)(p / d),
             (uint64_t)(p % d));
  }
}

static const uint64_t edge_values[] = {
    0,
    1,
    2,
    3,
    (UINT64_C(1) << 24) - 1,
    UINT64_C(1) << 24,
    (UINT64_C(1) << 24) + 1,
    UINT64_C(31622400000),
    UINT64_C(4294967295),
    TWO40 - 1,
    TWO40,
    TWO40 + 1,
    (UINT64_C(1) << 48) - 1,
    UINT64_C(1) << 50,
    (UINT64_C(1) << 52) + 12345,
    (UINT64_C(1) << 53) - 1,
};
#define N_EDGE (sizeof edge_values / sizeof edge_values[0])
#define MAX53 ((UINT64_C(1) << 53) - 1)

/* Draws one case of op; 0 if it is outside the helper's contract. */
static int draw_num_case(const char *op, uint64_t v[4]) {
  for (int i = 0; i < 4; i++) {
    v[i] = rnd() % 3 ? edge_values[rnd() % N_EDGE] : rnd() & MAX53;
  }
  if (v[2] == 0) {
    v[2] = 1;
  }
  if (rnd() % 3 == 0) {
    v[1] = v[2]; /* a * d / d: an exact quotient the float guess misses */
  }
  if (strcmp(op, "mod") == 0) {
    v[1] = 0;
  }
  if (strcmp(op, "muldiv") == 0 || strcmp(op, "ceil") == 0) {
    v[3] = v[3] == 0 ? 1 : v[3];
  }
  if (strcmp(op, "divmod") == 0) {
    rl__u128 q = (rl__u128)v[0] * v[1] / v[2];
    return q < MAX53;
  }
  return 1;
}

static void test_num_helpers(void **state) {
  (void)state;
  size_t src_len;
  char *src = read_num_lua(&src_len);
  static char script[sizeof num_driver + 65536];
  memcpy(script, src, src_len);
  memcpy(script + src_len, num_driver, sizeof num_driver);
  static const char *ops[] = {"muldiv", "ceil", "le", "mod", "divmod"};
  int checked = 0;
  for (int round = 0; round < 40; round++) {
    static char bufs[5 * 100][24];
    static char expect[100][48];
    const char *argv[3 + 5 * 100];
    int argc = 0;
    argv[argc++] = "EVAL";
    argv[argc++] = script;
    argv[argc++] = "0";
    int n = 0;
    while (n < 100) {
      const char *op = ops[rnd() % 5];
      uint64_t v[4];
      if (!draw_num_case(op, v)) {
        continue;
      }
      expect_num(op, v[0], v[1], v[2], v[3], expect[n], sizeof expect[n]);
      argv[argc++] = op;
      for (int j = 0; j < 4; j++) {
        snprintf(bufs[n * 5 + j], sizeof bufs[0], "%" PRIu64, v[j]);
        argv[argc++] = bufs[n * 5 + j];
      }
      n++;
    }
    redisReply *r = cmd_argv(argc, argv, NULL);
    if (r->type == REDIS_REPLY_ERROR) {
      fprintf(stderr, "%s\n", r->str);
    }
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, (size_t)n);
    for (int i = 0; i < n; i++) {
      if (strcmp(r->element[i]->str, expect[i]) != 0) {
        fprintf(stderr, "num.%s(%s, %s, %s, %s) = %s, want %s\n",
                argv[3 + i * 5], argv[4 + i * 5], argv[5 + i * 5],
                argv[6 + i * 5], argv[7 + i * 5], r->element[i]->str,
                expect[i]);
        fail();
      }
      checked++;
    }
    freeReplyObject(r);
  }
  assert_int_equal(checked, 4000);
}

/* ------------------------------------------------------------------------ */
/* Differential test on random traffic                                      */
/* ------------------------------------------------------------------------ */

/* A small random policy: 1..3 windows of distinct durations in 5..200 ms. */
static void random_small_policy(policy *p, rl_algorithm alg, int via_multi) {
  window_arg w[3];
  size_t n = (size_t)rnd_in(1, 3);
  for (size_t i = 0; i < n; i++) {
    int dup;
    do {
      w[i].duration = rnd() % 2 ? rnd_in(5, 40) : rnd_in(41, 200);
      dup = 0;
      for (size_t j = 0; j < i; j++) {
        dup |= w[j].duration == w[i].duration;
      }
    } while (dup);
    /* About one request per 3 ms reaches a key: a mix of both outcomes. */
    w[i].limit =
        rnd() % 6 ? rnd_in(w[i].duration / 4, w[i].duration) : rnd_in(1, 5);
    w[i].burst = 0;
    if (alg == RL_ALG_TOKEN_BUCKET && rnd() % 2) {
      w[i].burst = rnd_in(1, 2 * w[i].limit);
    }
    w[i].slots = 0;
    if (rnd() % 4) {
      w[i].slots = (uint32_t)rnd_in(2, 6);
    }
  }
  assert_int_equal(policy_init(p, alg, n, w, via_multi), RL_OK);
}

/* A random user key, with raw bytes, and its Redis name. */
static void random_key(key_ctx *k, int index) {
  char user[8];
  size_t len = (size_t)rnd_in(1, sizeof user);
  for (size_t i = 0; i < len; i++) {
    user[i] = (char)rnd();
  }
  user[0] = (char)('a' + index); /* distinct per key */
  assert_int_equal(
      rl__redis_key("diff", 4, user, len, k->key, sizeof k->key, &k->key_len),
      RL_OK);
}

static uint64_t random_cost(const policy *p) {
  uint64_t lmin = UINT64_MAX;
  uint64_t lmax = 0;
  for (size_t i = 0; i < p->shape.n_windows; i++) {
    uint64_t l = p->shape.windows[i].limit;
    lmin = l < lmin ? l : lmin;
    lmax = l > lmax ? l : lmax;
  }
  /* Mostly 1, sometimes a few, rarely anything up to just past a limit
   * (which the smaller windows can never admit). */
  uint64_t r = rnd() % 20;
  if (r < 15) {
    return 1;
  }
  return r < 19 ? rnd_in(1, lmin < 4 ? lmin : 4) : rnd_in(1, lmax + 2);
}

static void random_pause(void) {
  uint64_t r = rnd() % 100;
  if (r < 50) {
    return;
  }
  if (r < 97) {
    usleep((useconds_t)rnd_in(0, 1500));
  } else {
    sleep_ms((long)rnd_in(2, 15));
  }
}

enum { DIFF_KEYS = 4 };

static void run_differential(rl_algorithm alg, int via_multi, int requests) {
  flush();
  static key_ctx keys[DIFF_KEYS];
  for (int i = 0; i < DIFF_KEYS; i++) {
    memset(&keys[i], 0, sizeof keys[i]);
    random_small_policy(&keys[i].pol, alg, via_multi);
    random_key(&keys[i], i);
  }
  for (int i = 0; i < requests; i++) {
    key_ctx *k = &keys[rnd() % DIFF_KEYS];
    check_request(k, random_cost(&k->pol));
    random_pause();
  }
}

static void test_diff_sliding_log(void **state) {
  (void)state;
  run_differential(RL_ALG_SLIDING_LOG, 0, 2500);
  run_differential(RL_ALG_SLIDING_LOG, 1, 600);
}

static void test_diff_sliding_counter(void **state) {
  (void)state;
  run_differential(RL_ALG_SLIDING_COUNTER, 0, 2500);
  run_differential(RL_ALG_SLIDING_COUNTER, 1, 600);
}

static void test_diff_token_bucket(void **state) {
  (void)state;
  run_differential(RL_ALG_TOKEN_BUCKET, 0, 2500);
  run_differential(RL_ALG_TOKEN_BUCKET, 1, 600);
}

static void test_diff_fixed_window(void **state) {
  (void)state;
  run_differential(RL_ALG_FIXED_WINDOW, 0, 2500);
  run_differential(RL_ALG_FIXED_WINDOW, 1, 600);
}

/* ------------------------------------------------------------------------ */
/* Denials, TTLs, bad arguments                                             */
/* ------------------------------------------------------------------------ */

static const rl_algorithm all_algs[] = {
    RL_ALG_SLIDING_LOG, RL_ALG_SLIDING_COUNTER, RL_ALG_TOKEN_BUCKET,
    RL_ALG_FIXED_WINDOW};

/* DUMP of a key (its serialized value), into buf; returns the length, or
 * -1 when the key does not exist. */
static long dump_key(const key_ctx *k, char *buf, size_t cap) {
  redisReply *r = cmd_key(k->key, k->key_len, "DUMP", NULL);
  long len = -1;
  if (r->type == REDIS_REPLY_STRING) {
    assert_true(r->len <= cap);
    memcpy(buf, r->str, r->len);
    len = (long)r->len;
  }
  freeReplyObject(r);
  return len;
}

static long long pttl_of(const key_ctx *k) {
  redisReply *r = cmd_key(k->key, k->key_len, "PTTL", NULL);
  long long t = r->integer;
  freeReplyObject(r);
  return t;
}

static void named_key(key_ctx *k, const char *name) {
  assert_int_equal(rl__redis_key("t", 1, name, strlen(name), k->key,
                                 sizeof k->key, &k->key_len),
                   RL_OK);
}

static void test_denied_writes_nothing(void **state) {
  (void)state;
  static key_ctx k;
  static char before[STATE_MAX + 64], after[STATE_MAX + 64];
  for (size_t a = 0; a < 4; a++) {
    for (int multi = 0; multi < 2; multi++) {
      memset(&k, 0, sizeof k);
      window_arg w[2] = {{2, 60000, 0, 0}, {5, 3600000, 0, 0}};
      assert_int_equal(policy_init(&k.pol, all_algs[a], 2, w, multi), RL_OK);
      named_key(&k, "denied");
      flush();
      check_request(&k, 2); /* admitted: fills window 0 */
      long lb = dump_key(&k, before, sizeof before);
      long long tb = pttl_of(&k);
      assert_true(lb > 0);
      check_request(&k, 1);  /* denied by window 0 */
      check_request(&k, 99); /* never fits */
      long la = dump_key(&k, after, sizeof after);
      long long ta = pttl_of(&k);
      assert_int_equal(la, lb);
      assert_memory_equal(before, after, (size_t)lb);
      assert_true(ta > 0 && ta <= tb);
    }
  }
  /* A denial on a key never seen creates nothing. */
  memset(&k, 0, sizeof k);
  window_arg w1 = {1, 1000, 0, 0};
  assert_int_equal(policy_init(&k.pol, RL_ALG_FIXED_WINDOW, 1, &w1, 0), RL_OK);
  named_key(&k, "never-seen");
  check_request(&k, 2);
  assert_int_equal(pttl_of(&k), -2);
}

static void test_ttl_and_expiry(void **state) {
  (void)state;
  static key_ctx k[4];
  flush();
  int64_t latest = 0;
  for (size_t a = 0; a < 4; a++) {
    memset(&k[a], 0, sizeof k[a]);
    window_arg w[3] = {{3, 20, 0, 0}, {10, 60, 0, 4}, {100, 90, 0, 0}};
    assert_int_equal(policy_init(&k[a].pol, all_algs[a], 3, w, 0), RL_OK);
    char name[16];
    snprintf(name, sizeof name, "ttl%zu", a);
    named_key(&k[a], name);
    int64_t before = server_time_ms();
    check_request(&k[a], 1);
    long long t = pttl_of(&k[a]);
    int64_t exp = c_expiry(&k[a].pol, k[a].state);
    assert_true(t > 0);
    assert_true(t <= exp - before + 1 + TTL_SLACK_MS);
    latest = exp > latest ? exp : latest;
  }
  /* Gone soon after the latest expiry: a poll, not a fixed sleep. */
  int64_t deadline = latest + 200;
  size_t gone = 0;
  while (gone < 4 && server_time_ms() < deadline) {
    gone = 0;
    for (size_t a = 0; a < 4; a++) {
      gone += pttl_of(&k[a]) == -2;
    }
    sleep_ms(5);
  }
  assert_int_equal(gone, 4);
  /* Every key the random traffic left behind has a TTL. */
  run_differential(RL_ALG_SLIDING_LOG, 1, 50);
  redisReply *r = redisCommand(rc, "KEYS *");
  for (size_t i = 0; i < r->elements; i++) {
    redisReply *t =
        redisCommand(rc, "PTTL %b", r->element[i]->str, r->element[i]->len);
    /* -1 would be a key without a TTL; 0 is one about to expire, -2 one
     * that expired between KEYS and PTTL. */
    if (t->integer == -1 || t->integer < -2) {
      fprintf(stderr, "PTTL %lld\n", t->integer);
      fail();
    }
    freeReplyObject(t);
  }
  freeReplyObject(r);
}

/* Sends EVALSHA with the given arguments after sha/numkeys; returns the
 * reply (to free). */
static redisReply *raw_eval(const char *sha, const char *numkeys,
                            const char *key, size_t key_len, int argc,
                            const char *const *args) {
  const char *argv[64];
  size_t lens[64];
  int n = 0;
  argv[n] = "EVALSHA";
  lens[n++] = 7;
  argv[n] = sha;
  lens[n++] = 40;
  argv[n] = numkeys;
  lens[n++] = strlen(numkeys);
  for (int i = 0; i < atoi(numkeys); i++) {
    argv[n] = key;
    lens[n++] = key_len;
  }
  for (int i = 0; i < argc; i++) {
    argv[n] = args[i];
    lens[n++] = strlen(args[i]);
  }
  return cmd_argv(n, argv, lens);
}

typedef struct bad_case {
  const char *script;
  const char *args[12];
} bad_case;

static const bad_case bad_cases[] = {
    {"fixed_window", {"0", "1", "10", "1000", "0", "0"}},
    {"fixed_window", {"-1", "1", "10", "1000", "0", "0"}},
    {"fixed_window", {"1.5", "1", "10", "1000", "0", "0"}},
    {"fixed_window", {"abc", "1", "10", "1000", "0", "0"}},
    {"fixed_window", {"", "1", "10", "1000", "0", "0"}},
    {"fixed_window", {"1e3", "1", "10", "1000", "0", "0"}},
    {"fixed_window", {" 1", "1", "10", "1000", "0", "0"}},
    {"fixed_window", {"0x10", "1", "10", "1000", "0", "0"}},
    {"fixed_window", {"1099511627777", "1", "10", "1000", "0", "0"}},
    {"fixed_window", {"12345678901234567", "1", "10", "1000", "0", "0"}},
    {"fixed_window", {"1", "0"}},
    {"fixed_window",
     {"1", "9", "10", "1000", "0", "0", "10", "2000", "0", "0"}},
    {"fixed_window", {"1", "1", "10", "1000", "0"}},
    {"fixed_window", {"1", "1", "10", "1000", "0", "0", "7"}},
    {"fixed_window", {"1", "2", "10", "1000", "0", "0"}},
    {"fixed_window", {"1", "1", "0", "1000", "0", "0"}},
    {"fixed_window", {"1", "1", "1099511627777", "1000", "0", "0"}},
    {"fixed_window", {"1", "1", "10", "0", "0", "0"}},
    {"fixed_window", {"1", "1", "10", "31622400001", "0", "0"}},
    {"fixed_window", {"1", "1", "10", "1000", "1099511627777", "0"}},
    {"fixed_window", {"1", "1", "10", "1000", "0", "1"}},
    {"fixed_window", {"1", "1", "10", "1000", "0", "1025"}},
    {"sliding_log", {"1", "1", "4294967296", "1000", "0", "0"}},
    {"sliding_log", {"1", "1", "10", "4294967296", "0", "0"}},
    {"gcra", {"1", "1", "1", "31622400000", "1099511627776", "0"}},
    {"sliding_counter", {"1", "1", "10", "1000", "0", "0", "10"}},
    {"multi_window", {"leaky_bucket", "1", "1", "10", "1000", "0", "0"}},
    {"multi_window", {"\r\nboom", "1", "1", "10", "1000", "0", "0"}},
    {"multi_window", {"fixed_window", "1", "1", "10", "1000", "0"}},
    {"multi_window", {"sliding_log", "1", "1", "4294967296", "9", "0", "0"}},
    {"multi_window", {""}},
};

static int count_args(const bad_case *c) {
  int n = 0;
  while (n < 12 && c->args[n] != NULL) {
    n++;
  }
  return n;
}

/* Expects an error reply "ERR ratelimiter: ..." and the key untouched. */
static void expect_bad(const key_ctx *k, const char *script, const char *nk,
                       int argc, const char *const *args, const char *before,
                       long lb) {
  static char after[STATE_MAX + 64];
  redisReply *r = raw_eval(rl__script_find(script)->sha1, nk, k->key,
                           k->key_len, argc, args);
  if (r->type != REDIS_REPLY_ERROR ||
      strncmp(r->str, "ERR ratelimiter: ", 17) != 0) {
    fprintf(stderr, "%s %s: type %d %s\n", script, argc ? args[0] : "", r->type,
            r->type == REDIS_REPLY_ERROR ? r->str : "");
    fail();
  }
  assert_null(strchr(r->str, '\n'));
  freeReplyObject(r);
  long la = dump_key(k, after, sizeof after);
  assert_int_equal(la, lb);
  assert_memory_equal(before, after, (size_t)lb);
}

static void test_bad_arguments(void **state) {
  (void)state;
  static key_ctx k;
  static char before[STATE_MAX + 64];
  memset(&k, 0, sizeof k);
  window_arg w = {10, 60000, 0, 0};
  assert_int_equal(policy_init(&k.pol, RL_ALG_FIXED_WINDOW, 1, &w, 0), RL_OK);
  named_key(&k, "bad");
  flush();
  check_request(&k, 3);
  long lb = dump_key(&k, before, sizeof before);
  assert_true(lb > 0);
  for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
    const bad_case *c = &bad_cases[i];
    expect_bad(&k, c->script, "1", count_args(c), c->args, before, lb);
  }
  /* Key count: none or two. */
  const char *ok[] = {"1", "1", "10", "60000", "0", "0"};
  expect_bad(&k, "fixed_window", "0", 6, ok, before, lb);
  expect_bad(&k, "fixed_window", "2", 6, ok, before, lb);
  /* The same key still decides as before. */
  check_request(&k, 1);
  /* A key of another type: an error reply, no crash. */
  redisReply *r = redisCommand(rc, "LPUSH wrongtype x");
  freeReplyObject(r);
  r = raw_eval(rl__script_find("fixed_window")->sha1, "1", "wrongtype", 9, 6,
               ok);
  assert_int_equal(r->type, REDIS_REPLY_ERROR);
  freeReplyObject(r);
}

/* A blob of another size (the policy's shape changed) reads as a key never
 * seen. */
static void test_foreign_blob_is_fresh(void **state) {
  (void)state;
  static key_ctx k;
  memset(&k, 0, sizeof k);
  window_arg w = {4, 60000, 0, 8};
  assert_int_equal(policy_init(&k.pol, RL_ALG_SLIDING_LOG, 1, &w, 0), RL_OK);
  named_key(&k, "foreign");
  flush();
  redisReply *r = redisCommand(rc, "SET %b garbage PX 60000", k.key, k.key_len);
  freeReplyObject(r);
  check_request(&k, 4);
  check_request(&k, 1);
}

/* ------------------------------------------------------------------------ */
/* Large numbers: crafted states                                            */
/* ------------------------------------------------------------------------ */

static void put_u32(unsigned char *p, uint64_t v) {
  uint32_t x = (uint32_t)v;
  memcpy(p, &x, 4);
}

static void put_u64(unsigned char *p, uint64_t v) {
  memcpy(p, &v, 8);
}

static void put_i64(unsigned char *p, int64_t v) {
  memcpy(p, &v, 8);
}

static uint64_t big_limit(uint64_t max) {
  switch (rnd() % 6) {
  case 0:
    return rnd_in(1, 3);
  case 1:
    return max;
  case 2:
    return max - rnd_in(0, 5);
  default:
    return rnd_in(1, max);
  }
}

static uint64_t big_duration(uint64_t max) {
  switch (rnd() % 5) {
  case 0:
    return rnd_in(1, 7);
  case 1:
    return max - rnd_in(0, 3);
  default:
    return rnd_in(1, max);
  }
}

static uint64_t aligned(int64_t now, uint64_t w) {
  return (uint64_t)now - (uint64_t)now % w;
}

/* A start k windows from now's aligned window, k in [-3, 1], not < 0. */
static int64_t crafted_start(int64_t now, uint64_t w) {
  int64_t k = (int64_t)rnd_in(0, 4) - 3;
  int64_t s = (int64_t)aligned(now, w) + k * (int64_t)w;
  return s < 0 ? 0 : s;
}

/* A random reachable sliding-log state: sorted distinct times, live or
 * about to expire, total <= L, garbage in the unused slots. */
/* Entry i of a crafted log. */
static void put_entry(unsigned char *st, uint32_t s, uint32_t pos, uint64_t dt,
                      uint64_t n) {
  put_u32(st + 16 + 4 * pos, dt);
  put_u32(st + 16 + 4 * (s + pos), n);
}

/* A random reachable sliding-log state: sorted distinct times, live or
 * about to expire (some in the future: a clock that went back), total <= L,
 * entries anywhere in the arrays (head), garbage in the unused slots, and
 * sometimes a base so old that the next append must rebase. */
static void craft_log(unsigned char *st, const rl__window_params *p,
                      int64_t now) {
  uint32_t s = p->log_slots;
  uint32_t len = (uint32_t)rnd_in(0, s);
  uint64_t span = p->duration_ms + rnd_in(0, 50);
  int64_t first = now - (int64_t)span + (int64_t)rnd_in(0, 50);
  int64_t base = first - (int64_t)rnd_in(0, 3);
  if (rnd() % 4 == 0) {
    base = now - (int64_t)UINT32_MAX - (int64_t)rnd_in(1, 50);
  }
  base = base < 0 ? 0 : base;
  first = first < base ? base : first;
  for (uint32_t i = 0; i < s; i++) {
    put_entry(st, s, i, rnd(), rnd()); /* garbage, overwritten if used */
  }
  uint32_t head = rnd() % 3 ? (uint32_t)rnd_in(0, s - len) : s - len;
  uint64_t total = 0;
  uint64_t t = (uint64_t)(first - base);
  for (uint32_t i = 0; i < len; i++) {
    uint64_t room = p->limit - total;
    if (room == 0 || t > UINT32_MAX) {
      len = i;
      break;
    }
    uint64_t share = room / (len - i) + 1 > room ? room : room / (len - i) + 1;
    uint64_t n = rnd() % 2 ? rnd_in(1, room < 3 ? room : 3) : rnd_in(1, share);
    put_entry(st, s, head + i, t, n);
    total += n;
    t += rnd_in(1, 1 + 2 * (span / s + 1));
  }
  put_i64(st, base);
  put_u32(st + 8, len ? total : rnd());
  uint16_t hl[2] = {(uint16_t)head, (uint16_t)len};
  memcpy(st + 12, hl, sizeof hl);
}

static void craft_window(rl_algorithm alg, unsigned char *st,
                         const rl__window_params *p, int64_t now) {
  uint64_t l = p->limit;
  uint64_t w = p->duration_ms;
  switch (alg) {
  case RL_ALG_FIXED_WINDOW:
    put_i64(st, crafted_start(now, w));
    put_u64(st + 8, rnd_in(0, l));
    break;
  case RL_ALG_SLIDING_COUNTER:
    put_i64(st, crafted_start(now, w));
    put_u64(st + 8, rnd() % 5 ? rnd_in(0, l) : 0);
    put_u64(st + 16, rnd_in(0, l));
    break;
  case RL_ALG_TOKEN_BUCKET: {
    /* TAT in [now - W, now + B * W / L]. */
    uint64_t ahead = (uint64_t)((rl__u128)p->burst * w / l);
    int64_t tat = now - (int64_t)w + (int64_t)rnd_in(0, w + ahead);
    put_i64(st, tat < 0 ? 0 : tat);
    put_u64(st + 8, rnd_in(0, l - 1));
    break;
  }
  case RL_ALG_SLIDING_LOG:
    craft_log(st, p, now);
    break;
  }
}

/* One random large window. */
static void big_window(window_arg *w, rl_algorithm alg, size_t n) {
  int is_log = alg == RL_ALG_SLIDING_LOG;
  w->limit = big_limit(is_log ? UINT32_MAX : TWO40);
  w->duration = big_duration(is_log ? UINT32_MAX : UINT64_C(31622400000));
  w->burst = 0;
  w->slots = 0;
  if (alg == RL_ALG_TOKEN_BUCKET && rnd() % 2) {
    /* Within the scripts' horizon: B * W / L <= 2^50. */
    rl__u128 bmax = ((rl__u128)1 << 50) * w->limit / w->duration;
    w->burst = rnd_in(1, bmax > TWO40 ? TWO40 : (uint64_t)bmax);
  }
  if (is_log) {
    static const uint32_t slots[] = {2, 3, 5, 32, 1024};
    w->slots = n > 3 && rnd() % 2 ? 1024 : slots[rnd() % 5];
  }
}

/* A random policy of large windows (drawn again until it is valid: two
 * windows may draw the same duration). */
static void big_policy(policy *p, rl_algorithm alg) {
  window_arg w[RL_MAX_WINDOWS];
  size_t n;
  do {
    n = rnd() % 4 ? (size_t)rnd_in(1, 2) : (size_t)rnd_in(3, 8);
    for (size_t i = 0; i < n; i++) {
      big_window(&w[i], alg, n);
    }
  } while (policy_init(p, alg, n, w, rnd() % 3 == 0) != RL_OK);
}

static uint64_t big_cost(const policy *p) {
  uint64_t l = p->shape.windows[rnd() % p->shape.n_windows].limit;
  switch (rnd() % 6) {
  case 0:
    return 1;
  case 1:
    return l;
  case 2:
    return l + 1 <= TWO40 ? l + 1 : l;
  case 3:
    return rnd_in(1, TWO40);
  default:
    return rnd_in(1, l);
  }
}

/* Writes a crafted state into Redis and the C copy. */
static void install_state(key_ctx *k, int64_t now) {
  size_t n = k->pol.shape.state_size;
  for (size_t i = 0; i < k->pol.shape.n_windows; i++) {
    craft_window(k->pol.shape.algorithm,
                 k->state + k->pol.shape.state_offset[i],
                 &k->pol.shape.windows[i], now);
  }
  redisReply *r =
      redisCommand(rc, "SET %b %b PX 600000", k->key, k->key_len, k->state, n);
  assert_int_equal(r->type, REDIS_REPLY_STATUS);
  freeReplyObject(r);
}

static void run_large(rl_algorithm alg, int rounds) {
  static key_ctx k;
  flush();
  for (int round = 0; round < rounds; round++) {
    memset(&k, 0, sizeof k);
    big_policy(&k.pol, alg);
    named_key(&k, "large");
    install_state(&k, server_time_ms());
    for (int i = 0; i < 4; i++) {
      check_request(&k, big_cost(&k.pol));
    }
  }
}

/* lease.lua on a token bucket (1000 per 1000 ms: one unit per ms, burst
 * 1000). The granted units are charged as if spent at the lease's end
 * (TAT = max(TAT, now + valid) + granted ms), the latest they may be spent,
 * so whenever they are spent Redis' TAT is not behind the real one. With
 * remaining r after the request and the grant, Redis' bucket is then
 * 1000 - r units below its capacity, at least valid + granted of them (+1
 * for the rounding of remaining). Without push_ms a lease lasts until the
 * TAT (a full bucket: 1 ms); with it, the TAT may be pushed push_ms ahead,
 * never past an empty bucket (push cut to burst - granted ms). */
static redisReply *lease_call(const char *key, const char *want,
                              const char *hold, const char *push,
                              const char *cost) {
  const rl__script *s = rl__script_find("lease");
  const char *argv[] = {"EVALSHA", s->sha1, "1",  key,  "token_bucket",
                        want,      hold,    push, cost, "1",
                        "1000",    "1000",  "0",  "0"};
  size_t lens[14];
  for (size_t i = 0; i < 14; i++) {
    lens[i] = strlen(argv[i]);
  }
  redisReply *r = cmd_argv(14, argv, lens);
  assert_int_equal(r->type, REDIS_REPLY_ARRAY);
  assert_int_equal(r->elements, 9);
  return r;
}

typedef struct bucket_lease {
  long long remaining, granted, valid;
} bucket_lease;

/* Units left in the bucket, seen by a plain decision of cost 1. */
static long long bucket_left(void) {
  const rl__script *s = rl__script_find("gcra");
  redisReply *r =
      redisCommand(rc, "EVALSHA %s 1 {lease}tb 1 1 1000 1000 0 0", s->sha1);
  assert_int_equal(r->type, REDIS_REPLY_ARRAY);
  long long left = r->element[0]->integer ? r->element[3]->integer + 1 : 0;
  freeReplyObject(r);
  return left;
}

/* Grants want with the request of cost, and checks the lease's span. The
 * reply's remaining leaves out this lease's push: a plain decision right
 * after it sees the bucket that much lower. */
static bucket_lease lease_checked(const char *want, const char *hold,
                                  const char *push, const char *cost) {
  redisReply *r = lease_call("{lease}tb", want, hold, push, cost);
  bucket_lease l = {r->element[3]->integer, r->element[7]->integer,
                    r->element[8]->integer};
  print_message("remaining %lld granted %lld valid %lld ms\n", l.remaining,
                l.granted, l.valid);
  assert_int_equal(r->element[0]->integer, 1);
  assert_true(l.granted == 0 || l.valid >= 1);
  assert_true(l.valid <= atoll(hold));
  freeReplyObject(r);
  if (l.granted > 0) {
    long long left = bucket_left();
    print_message("a decision after it: %lld left\n", left);
    assert_true(l.valid + l.granted <= 1000 - left + 1);
  }
  return l;
}

static void test_lease_token_bucket_span(void **state) {
  (void)state;
  flush();
  /* no push: a full bucket's lease lasts 1 ms */
  bucket_lease l = lease_checked("50", "100", "0", "1");
  assert_int_equal(l.granted, 50);
  assert_true(l.valid <= 1);
  /* pushed: 50 units charged 100 ms ahead */
  flush();
  l = lease_checked("50", "100", "100", "1");
  assert_int_equal(l.granted, 50);
  assert_int_equal(l.valid, 100);
  assert_true(l.remaining >= 1000 - 51 - 1 && l.remaining <= 1000 - 51 + 1);
  /* a bucket already ahead further than the hold is not pushed */
  lease_checked("0", "100", "0", "300");
  l = lease_checked("60", "100", "100", "1");
  assert_int_equal(l.granted, 60);
  assert_int_equal(l.valid, 100);
  /* (+ the refill of the time between these calls: slow under TSan) */
  assert_true(l.remaining >= 1000 - 513 - 2 &&
              l.remaining <= 1000 - 513 + 2 + TTL_SLACK_MS);
  /* the push stops at an empty bucket: cut to burst - granted */
  flush();
  l = lease_checked("400", "5000", "5000", "1");
  assert_int_equal(l.granted, 400);
  assert_true(l.valid >= 598 && l.valid <= 600);
}

/* With its push key (KEYS[2]), lease.lua remembers the latest pushed
 * lease end and reports the bucket without it: a second instance asking
 * right after a push sees the bucket its instances' spending left. */
static void test_lease_token_bucket_push_key(void **state) {
  (void)state;
  flush();
  const rl__script *s = rl__script_find("lease");
  /* a lease that does not push (push_ms 0: until the TAT) leaves no push
   * key: the bucket's TAT is then all spending */
  redisReply *r0 = redisCommand(rc,
                                "EVALSHA %s 2 {lease}tb rlp{lease}tb "
                                "token_bucket 50 100 0 1 1 1000 1000 0 0",
                                s->sha1);
  assert_int_equal(r0->type, REDIS_REPLY_ARRAY);
  assert_int_equal(r0->element[7]->integer, 50);
  freeReplyObject(r0);
  r0 = redisCommand(rc, "EXISTS rlp{lease}tb");
  assert_int_equal(r0->integer, 0);
  freeReplyObject(r0);
  flush();
  redisReply *r = redisCommand(rc,
                               "EVALSHA %s 2 {lease}tb rlp{lease}tb "
                               "token_bucket 50 100 100 1 1 1000 1000 0 0",
                               s->sha1);
  if (r->type == REDIS_REPLY_ERROR) {
    print_message("%s\n", r->str);
  }
  assert_int_equal(r->type, REDIS_REPLY_ARRAY);
  assert_int_equal(r->element[7]->integer, 50);
  assert_int_equal(r->element[8]->integer, 100);
  long long now = r->element[6]->integer;
  freeReplyObject(r);
  r = redisCommand(rc, "GET rlp{lease}tb");
  assert_int_equal(r->type, REDIS_REPLY_STRING);
  assert_int_equal(atoll(r->str), now + 100);
  freeReplyObject(r);
  /* a plain decision sees the push: 1000 - 51 - 100 left, less one */
  assert_true(bucket_left() <= 1000 - 151 + 2);
  /* another lease call (no units) sees the bucket without it */
  r = redisCommand(rc,
                   "EVALSHA %s 2 {lease}tb rlp{lease}tb "
                   "token_bucket 0 100 0 1 1 1000 1000 0 0",
                   s->sha1);
  assert_int_equal(r->type, REDIS_REPLY_ARRAY);
  long long left = r->element[3]->integer;
  print_message("without the push: %lld left\n", left);
  assert_true(left >= 1000 - 53 - 2 && left <= 1000 - 53 + 2);
  freeReplyObject(r);
}

/* lease_return.lua gives nothing back to a token bucket (another lease
 * may have pushed its TAT since), and is exact for the fixed window. */
static void test_lease_return_token_bucket(void **state) {
  (void)state;
  flush();
  bucket_lease l = lease_checked("50", "100", "0", "1");
  assert_int_equal(l.granted, 50);
  const rl__script *s = rl__script_find("lease_return");
  redisReply *r = redisCommand(
      rc, "EVALSHA %s 1 {lease}tb token_bucket 50 0 1 1 1000 1000 0 0",
      s->sha1);
  assert_int_equal(r->type, REDIS_REPLY_INTEGER);
  assert_int_equal(r->integer, 0);
  freeReplyObject(r);
}

/* lease.lua on a sliding log (100 per 200 ms): the units go into a
 * reservation beside the log, which counts from the grant until W after
 * the lease's end; lease_return.lua takes back what was not spent. */
static redisReply *log_call(const char *script, const char *args) {
  const rl__script *s = rl__script_find(script);
  char buf[256];
  const char *argv[16] = {"EVALSHA", s->sha1, "1", "{lease}sl", "sliding_log"};
  size_t lens[16];
  int n = 5;
  snprintf(buf, sizeof buf, "%s", args);
  for (char *save = NULL, *t = strtok_r(buf, " ", &save); t != NULL && n < 16;
       t = strtok_r(NULL, " ", &save)) {
    argv[n++] = t;
  }
  for (int i = 0; i < n; i++) {
    lens[i] = strlen(argv[i]);
  }
  redisReply *r = cmd_argv(n, argv, lens);
  if (r->type == REDIS_REPLY_ERROR) {
    print_message("%s\n", r->str);
  }
  assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
  return r;
}

/* A plain decision of cost units: its remaining (or -retry_after when
 * denied). */
static long long log_decide_cost(int cost) {
  const rl__script *s = rl__script_find("sliding_log");
  redisReply *r = redisCommand(rc, "EVALSHA %s 1 {lease}sl %d 1 100 200 0 0",
                               s->sha1, cost);
  assert_int_equal(r->type, REDIS_REPLY_ARRAY);
  long long v =
      r->element[0]->integer ? r->element[3]->integer : -r->element[5]->integer;
  freeReplyObject(r);
  return v;
}

static long long log_decide(void) {
  return log_decide_cost(1);
}

static void test_lease_sliding_log(void **state) {
  (void)state;
  flush();
  redisReply *r = log_call("lease", "30 50 0 1 1 100 200 0 0");
  assert_int_equal(r->element[0]->integer, 1);
  assert_int_equal(r->element[3]->integer, 100 - 31);
  assert_int_equal(r->element[7]->integer, 30);
  assert_int_equal(r->element[8]->integer, 50);
  long long at = r->element[6]->integer;
  freeReplyObject(r);
  /* the log's state (16 + 8 * 32 bytes) and one reservation after it */
  r = redisCommand(rc, "STRLEN {lease}sl");
  assert_int_equal(r->integer, 16 + 8 * 32 + 4 + 16);
  freeReplyObject(r);
  assert_int_equal(log_decide(), 100 - 32);
  /* 10 units go back */
  char args[128];
  snprintf(args, sizeof args, "10 %lld 1 1 100 200 0 0", at);
  r = log_call("lease_return", args);
  assert_int_equal(r->integer, 1);
  freeReplyObject(r);
  assert_int_equal(log_decide(), 100 - 23);
  /* a return for another grant time changes nothing */
  snprintf(args, sizeof args, "10 %lld 1 1 100 200 0 0", at + 100000);
  r = log_call("lease_return", args);
  assert_int_equal(r->integer, 0);
  freeReplyObject(r);
  /* the rest of the window reserved: a denial waits for the reservation
   * (its end + W), not only for the log's entries */
  r = log_call("lease", "1000 50 0 1 1 100 200 0 0");
  assert_int_equal(r->element[0]->integer, 1);
  long long now = r->element[6]->integer;
  assert_int_equal(r->element[7]->integer, 100 - 24);
  assert_int_equal(r->element[3]->integer, 0);
  freeReplyObject(r);
  long long retry = -log_decide();
  print_message("denied, retry after %lld ms\n", retry);
  /* one unit: the oldest log entry's, at + 200 */
  assert_true(retry <= at + 200 - now && retry >= at + 200 - now - 50);
  /* five: the first reservation's too (20 units, until at + 50 + 200) */
  retry = -log_decide_cost(5);
  print_message("5 units: retry after %lld ms\n", retry);
  assert_true(retry <= at + 250 - now && retry >= at + 250 - now - 50);
  /* every reservation and entry gone W after the last lease's end */
  sleep_ms(260);
  assert_int_equal(log_decide(), 100 - 1);
  r = redisCommand(rc, "STRLEN {lease}sl");
  assert_int_equal(r->integer, 16 + 8 * 32);
  freeReplyObject(r);
}

/* At most 32 reservations at a time; a key's reservations expire. */
static void test_lease_sliding_log_full(void **state) {
  (void)state;
  flush();
  for (int i = 0; i < 32; i++) {
    redisReply *r = log_call("lease", "1 5000 0 1 1 100 200 0 0");
    assert_int_equal(r->element[7]->integer, 1);
    freeReplyObject(r);
  }
  redisReply *r = log_call("lease", "1 5000 0 1 1 100 200 0 0");
  assert_int_equal(r->element[0]->integer, 1); /* the request itself */
  assert_int_equal(r->element[7]->integer, 0);
  assert_int_equal(r->element[3]->integer, 100 - 65);
  freeReplyObject(r);
  /* garbage after the states is no reservation list: a fresh state */
  r = redisCommand(rc, "APPEND {lease}sl xyz");
  freeReplyObject(r);
  assert_int_equal(log_decide(), 100 - 1);
}

/* A lease command turned into the return of its unused units (the cache
 * does that when a grant cannot be installed) is the return command built
 * directly, and Redis takes it: the fixed window gets its units back. */
static void test_lease_cmd_to_return(void **state) {
  (void)state;
  flush();
  rl__policy p = compile(RL_ALG_FIXED_WINDOW, 1000, 60000);
  rl__lease_cmd lc, ret;
  assert_int_equal(rl__lease_cmd_build(&lc, &p, "k", 1, 40, 1000, 0, 1), RL_OK);
  assert_int_equal(lc.cmd.argc, 5 + 3 + 2 + 4);
  redisReply *r = cmd_argv(lc.cmd.argc, lc.cmd.argv, lc.cmd.lens);
  assert_int_equal(r->type, REDIS_REPLY_ARRAY);
  assert_int_equal(r->element[7]->integer, 40);
  long long at = r->element[6]->integer;
  freeReplyObject(r);
  rl__lease_cmd_to_return(&lc, 40, at);
  assert_int_equal(rl__lease_return_build(&ret, &p, "k", 1, 40, at), RL_OK);
  assert_int_equal(lc.cmd.argc, ret.cmd.argc);
  assert_int_equal(lc.cmd.script, ret.cmd.script);
  for (int i = 1; i < ret.cmd.argc; i++) {
    assert_int_equal(lc.cmd.lens[i], ret.cmd.lens[i]);
    assert_memory_equal(lc.cmd.argv[i], ret.cmd.argv[i], ret.cmd.lens[i]);
  }
  r = cmd_argv(lc.cmd.argc, lc.cmd.argv, lc.cmd.lens);
  assert_int_equal(r->type, REDIS_REPLY_INTEGER);
  assert_int_equal(r->integer, 1);
  freeReplyObject(r);
  /* 41 units were charged, 40 went back: 999 left before this one */
  const rl__script *fs = rl__script_find("fixed_window");
  r = redisCommand(rc, "EVALSHA %s 1 %b 1 1 1000 60000 0 0", fs->sha1,
                   lc.cmd.argv[3], lc.cmd.lens[3]);
  assert_int_equal(r->element[3]->integer, 998);
  freeReplyObject(r);
}

static void test_large_sliding_log(void **state) {
  (void)state;
  run_large(RL_ALG_SLIDING_LOG, 150);
}

static void test_large_sliding_counter(void **state) {
  (void)state;
  run_large(RL_ALG_SLIDING_COUNTER, 300);
}

static void test_large_token_bucket(void **state) {
  (void)state;
  run_large(RL_ALG_TOKEN_BUCKET, 300);
}

static void test_large_fixed_window(void **state) {
  (void)state;
  run_large(RL_ALG_FIXED_WINDOW, 200);
}

int main(void) {
  if (access(RL_REDIS_SERVER, X_OK) != 0) {
    printf("test_lua_scripts: no redis-server (%s): install it "
           "(scripts/deps.sh)\n",
           RL_REDIS_SERVER);
    return 1;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scripts_embedded),
      cmocka_unit_test(test_num_helpers),
      cmocka_unit_test(test_diff_sliding_log),
      cmocka_unit_test(test_diff_sliding_counter),
      cmocka_unit_test(test_diff_token_bucket),
      cmocka_unit_test(test_diff_fixed_window),
      cmocka_unit_test(test_denied_writes_nothing),
      cmocka_unit_test(test_ttl_and_expiry),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_foreign_blob_is_fresh),
      cmocka_unit_test(test_lease_token_bucket_span),
      cmocka_unit_test(test_lease_sliding_log),
      cmocka_unit_test(test_lease_sliding_log_full),
      cmocka_unit_test(test_lease_token_bucket_push_key),
      cmocka_unit_test(test_lease_return_token_bucket),
      cmocka_unit_test(test_lease_cmd_to_return),
      cmocka_unit_test(test_large_sliding_log),
      cmocka_unit_test(test_large_sliding_counter),
      cmocka_unit_test(test_large_token_bucket),
      cmocka_unit_test(test_large_fixed_window),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
