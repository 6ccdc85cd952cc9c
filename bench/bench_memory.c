/*
 * bench_memory.c - speed, allocations and memory of the in-process store.
 *
 * Prints one JSON object per line on stdout. Cases:
 *   hot_key             one key, one window, each algorithm, 1 thread
 *   memory_1m_keys      insert N distinct "user:%07d" keys; RSS growth,
 *                       heap growth and the store's own accounting per key
 *   distinct_keys_1m    then decide round-robin over those N known keys
 *   two_windows         100/min + 1000/h on one hot key (rl_decide by name)
 *   distinct_keys       1 and 2 threads, each on its own key set
 *   scaling_distinct_keys  2-thread / 1-thread throughput ratio
 *   contention_hot_key  2 threads on the same key (informative)
 *
 *   scaling_baseline[_shared_locks]  calibrations of the machine itself,
 *                       not of the library (see case_baseline)
 *
 * Every case uses the default clock (CLOCK_REALTIME): time advances and
 * windows roll as in production. Each measured case runs BENCH_REPS
 * repetitions of BENCH_REP_MS milliseconds (after a warm-up that creates
 * every key) and reports the median repetition (1- and 2-thread runs are
 * interleaved). Allocations are counted by alloc_count.c between two
 * barriers around the measured loops only.
 *
 * ns_per_op is per thread (wall time x threads / operations); ops_per_sec
 * is the aggregate. others_cpu is the share of the machine's CPU time that
 * other processes used while the case ran (this is a shared 2-core box):
 * figures taken with others_cpu well above 0 are pessimistic. Targets are
 * reported ("target", "pass"), never asserted: the exit status is non-zero
 * only when the library returns an error.
 *
 * Environment: BENCH_REP_MS (default 300), BENCH_REPS (5), BENCH_KEYS
 * (1000000, the memory case's key count), BENCH_CASES (comma-separated
 * subset of hot_key,memory,two_windows,baseline,scaling,contention).
 */
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc_count.h"
#include "ratelimiter.h"

#define KEY_STRIDE 32     /* bytes per key in a key set */
#define CHUNK 256         /* operations between two clock reads */
#define HOT_WARMUP 100000 /* warm-up operations on a hot key */
#define THREAD_KEYS 4096  /* keys per thread, distinct-key scaling */
#define MAX_THREADS 2     /* this benchmark's largest thread count */
#define MAX_REPS 15       /* repetitions per case, at most */
#define DEFAULT_REPS 5
#define MEM_BUDGET (1ul << 30) /* memory case: nothing is evicted */
#define HOUR_MS 3600000
#define MEM_LIMIT 100 /* memory case: 100/h, a GCRA key lives 36 s/unit */
#define TARGET_HOT_NS 150.0
#define TARGET_SCALING 1.6
#define TARGET_BYTES_PER_KEY 100.0

/* ------------------------------------------------------------------------ */
/* Options, time, failure                                                   */
/* ------------------------------------------------------------------------ */

typedef struct bench_opts {
  double rep_ns; /* measured time per repetition */
  int reps;
  size_t mem_keys;
  const char *cases; /* NULL: all; else a comma-separated list */
} bench_opts;

static bench_opts g_opts;
static atomic_int g_failed; /* a library call returned an error */

static long env_long(const char *name, long def, long lo, long hi) {
  const char *s = getenv(name);
  if (s == NULL || *s == '\0') {
    return def;
  }
  long v = strtol(s, NULL, 10);
  return v < lo ? lo : v > hi ? hi : v;
}

static void opts_init(void) {
  g_opts.rep_ns = (double)env_long("BENCH_REP_MS", 300, 10, 60000) * 1e6;
  g_opts.reps = (int)env_long("BENCH_REPS", DEFAULT_REPS, 1, MAX_REPS);
  g_opts.mem_keys = (size_t)env_long("BENCH_KEYS", 1000000, 1000, 10000000);
  g_opts.cases = getenv("BENCH_CASES");
}

/* Whether BENCH_CASES (e.g. "hot_key,scaling") selects this case. */
static int want(const char *name) {
  const char *p = g_opts.cases;
  size_t len = strlen(name);
  if (p == NULL || *p == '\0') {
    return 1;
  }
  while ((p = strstr(p, name)) != NULL) {
    int starts = p == g_opts.cases || p[-1] == ',';
    if (starts && (p[len] == '\0' || p[len] == ',')) {
      return 1;
    }
    p += len;
  }
  return 0;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int err) {
  fprintf(stderr, "bench_memory: %s: %s\n", what, rl_strerror(err));
  exit(1);
}

/* Reads a small /proc file into buf (NUL-terminated) without allocating. */
static int read_proc(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    return -1;
  }
  ssize_t n = read(fd, buf, size - 1);
  close(fd);
  if (n <= 0) {
    return -1;
  }
  buf[n] = '\0';
  return 0;
}

static size_t rss_bytes(void) {
  char buf[256];
  if (read_proc("/proc/self/statm", buf, sizeof buf) != 0) {
    return 0;
  }
  char *p = strchr(buf, ' ');
  size_t pages = p ? strtoull(p + 1, NULL, 10) : 0;
  return pages * (size_t)sysconf(_SC_PAGESIZE);
}

/* CPU accounting in clock ticks: the whole machine (/proc/stat) and this
 * process (/proc/self/stat), to tell how busy other processes kept the
 * cores while a case ran. */
typedef struct cpu_sample {
  uint64_t total, busy, steal, self;
} cpu_sample;

/* Parses n unsigned numbers separated by spaces from p into v (0 where the
 * text ends early). */
static void parse_u64s(const char *p, uint64_t *v, int n) {
  for (int i = 0; i < n; i++) {
    char *end = NULL;
    v[i] = p != NULL ? strtoull(p, &end, 10) : 0;
    p = end != p ? end : NULL;
  }
}

static void cpu_sample_take(cpu_sample *c) {
  char buf[1024];
  uint64_t v[8]; /* user nice system idle iowait irq softirq steal */
  memset(c, 0, sizeof *c);
  int ok = read_proc("/proc/stat", buf, sizeof buf) == 0 &&
           strncmp(buf, "cpu ", 4) == 0;
  parse_u64s(ok ? buf + 4 : NULL, v, 8);
  for (int i = 0; i < 8; i++) {
    c->total += v[i];
  }
  c->busy = c->total - v[3] - v[4];
  c->steal = v[7];
  /* /proc/self/stat: after "pid (comm) state", field 14 is utime and 15
   * stime: the 11th and 12th numbers after the state letter. */
  const char *p = NULL;
  if (read_proc("/proc/self/stat", buf, sizeof buf) == 0) {
    p = strrchr(buf, ')');
  }
  uint64_t f[12];
  parse_u64s(p != NULL && strlen(p) > 4 ? p + 4 : NULL, f, 12);
  c->self = f[10] + f[11];
}

/* Fractions of all CPU time between a and b: used by other processes, and
 * stolen by the hypervisor. */
typedef struct cpu_load {
  double others, steal;
} cpu_load;

static void cpu_load_between(const cpu_sample *a, const cpu_sample *b,
                             cpu_load *out) {
  double total = (double)(b->total - a->total);
  double others = (double)(b->busy - a->busy) - (double)(b->self - a->self);
  out->others = total > 0 && others > 0 ? others / total : 0;
  out->steal = total > 0 ? (double)(b->steal - a->steal) / total : 0;
}

/* ------------------------------------------------------------------------ */
/* JSON lines                                                               */
/* ------------------------------------------------------------------------ */

typedef struct json {
  char buf[2048];
  size_t len;
} json;

static void j_raw(json *j, const char *key, const char *text, int quote) {
  size_t room = sizeof j->buf - j->len;
  int n =
      snprintf(j->buf + j->len, room, quote ? "%s\"%s\":\"%s\"" : "%s\"%s\":%s",
               j->len > 1 ? "," : "", key, text);
  if (n > 0 && (size_t)n < room) {
    j->len += (size_t)n;
  }
}

static void j_str(json *j, const char *key, const char *v) {
  j_raw(j, key, v, 1);
}

static void j_u64(json *j, const char *key, uint64_t v) {
  char t[32];
  snprintf(t, sizeof t, "%llu", (unsigned long long)v);
  j_raw(j, key, t, 0);
}

static void j_num(json *j, const char *key, double v) {
  char t[48];
  snprintf(t, sizeof t, "%.3f", v);
  j_raw(j, key, t, 0);
}

static void j_bool(json *j, const char *key, int v) {
  j_raw(j, key, v ? "true" : "false", 0);
}

static void j_begin(json *j, const char *name, int threads) {
  j->buf[0] = '{';
  j->len = 1;
  j_str(j, "name", name);
  j_u64(j, "threads", (uint64_t)threads);
}

static void j_end(json *j) {
  printf("%.*s}\n", (int)j->len, j->buf);
  fflush(stdout);
}

/* allocs_per_op, or null when the counter is not compiled in. */
static void j_allocs(json *j, uint64_t allocs, uint64_t ops) {
  if (!bench_alloc_enabled() || ops == 0) {
    j_raw(j, "allocs_per_op", "null", 0);
    return;
  }
  j_num(j, "allocs_per_op", (double)allocs / (double)ops);
}

/* ------------------------------------------------------------------------ */
/* Limiters and keys                                                        */
/* ------------------------------------------------------------------------ */

typedef struct alg_case {
  const char *label;
  rl_algorithm alg;
  uint32_t log_slots; /* sliding log only; 0 = default */
} alg_case;

static const alg_case ALGS[] = {
    {"token_bucket", RL_ALG_TOKEN_BUCKET, 0},
    {"fixed_window", RL_ALG_FIXED_WINDOW, 0},
    {"sliding_counter", RL_ALG_SLIDING_COUNTER, 0},
    {"sliding_log", RL_ALG_SLIDING_LOG, 0},
};
#define N_ALGS (sizeof ALGS / sizeof ALGS[0])

static const alg_case MEM_ALGS[] = {
    {"token_bucket", RL_ALG_TOKEN_BUCKET, 0},
    {"fixed_window", RL_ALG_FIXED_WINDOW, 0},
    {"sliding_counter", RL_ALG_SLIDING_COUNTER, 0},
    {"sliding_log", RL_ALG_SLIDING_LOG, 0},
    {"sliding_log", RL_ALG_SLIDING_LOG, 4},
};
#define N_MEM_ALGS (sizeof MEM_ALGS / sizeof MEM_ALGS[0])

static void j_alg(json *j, const alg_case *a) {
  j_str(j, "algorithm", a->label);
  if (a->alg == RL_ALG_SLIDING_LOG) {
    j_u64(j, "log_slots", a->log_slots ? a->log_slots : RL_LOG_SLOTS_DEFAULT);
  }
}

/* A limiter with one policy `name` of the given windows. */
static rl_limiter *make_limiter(const alg_case *a, const char *name,
                                const rl_window *w, size_t n_windows,
                                size_t max_bytes) {
  rl_policy p;
  rl_policy_init(&p);
  p.name = name;
  p.algorithm = a->alg;
  p.log_slots = a->log_slots;
  for (size_t i = 0; i < n_windows; i++) {
    p.windows[i] = w[i];
  }
  p.n_windows = n_windows;
  rl_config c;
  rl_config_init(&c);
  c.policies = &p;
  c.n_policies = 1;
  if (max_bytes != 0) {
    c.memory.max_bytes = max_bytes;
  }
  rl_limiter *rl = NULL;
  int err = rl_new(&c, &rl);
  if (err != RL_OK) {
    die("rl_new", err);
  }
  return rl;
}

/* The single window of the hot-key and contention cases: 10^6 per second,
 * so a hot key is admitted until its window is spent, then denied, and
 * windows roll during the run. */
static rl_limiter *make_single(const alg_case *a) {
  rl_window w = {1000000, 1000, 0};
  return make_limiter(a, NULL, &w, 1, 0);
}

/* n keys "<prefix>user:%07d", KEY_STRIDE bytes apart, all the same length. */
typedef struct keyset {
  char *buf;
  size_t n;
  size_t len;
} keyset;

static void keyset_make(keyset *ks, const char *prefix, size_t n) {
  ks->buf = calloc(n, KEY_STRIDE);
  if (ks->buf == NULL) {
    die("key set", RL_ERR_NO_MEMORY);
  }
  ks->n = n;
  for (size_t i = 0; i < n; i++) {
    int len = snprintf(ks->buf + i * KEY_STRIDE, KEY_STRIDE, "%suser:%07zu",
                       prefix, i);
    ks->len = (size_t)len;
  }
}

static inline const char *key_at(const keyset *ks, size_t i) {
  return ks->buf + i * KEY_STRIDE;
}

/* ------------------------------------------------------------------------ */
/* Measured loops                                                           */
/* ------------------------------------------------------------------------ */

/* One thread's work. Aligned to a cache line, and the loop keeps its
 * counters in registers, so two workers never share a written line. */
typedef struct worker {
  _Alignas(64) rl_limiter *rl;
  const keyset *keys;
  const char *policy; /* NULL: rl_allow; else rl_decide on this policy */
  size_t warmup;      /* operations before the start barrier */
  pthread_barrier_t *start, *stop;
  uint64_t ops, allowed, errors;
} worker;

/* One decision on key k: 1 admitted, 0 denied, -1 error. */
static inline int one_op(const worker *w, size_t k) {
  rl_decision d;
  int err;
  if (w->policy == NULL) {
    err = rl_allow(w->rl, key_at(w->keys, k), w->keys->len, &d);
  } else {
    rl_request req = {w->policy, strlen(w->policy), key_at(w->keys, k),
                      w->keys->len, 1};
    err = rl_decide(w->rl, &req, &d);
  }
  return err != RL_OK ? -1 : d.allowed != 0;
}

/* Runs CHUNK-operation batches round-robin over the keys until the
 * repetition's time is spent. */
static void measured_loop(worker *w) {
  size_t k = 0, n = w->keys->n;
  uint64_t ops = 0, allowed = 0, errors = 0, t0 = now_ns();
  do {
    for (int i = 0; i < CHUNK; i++) {
      int r = one_op(w, k);
      allowed += r > 0;
      errors += r < 0;
      k = k + 1 == n ? 0 : k + 1;
    }
    ops += CHUNK;
  } while ((double)(now_ns() - t0) < g_opts.rep_ns);
  w->ops = ops;
  w->allowed = allowed;
  w->errors = errors;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  for (size_t i = 0; i < w->warmup; i++) {
    if (one_op(w, i % w->keys->n) < 0) {
      g_failed = 1;
    }
  }
  pthread_barrier_wait(w->start);
  measured_loop(w);
  pthread_barrier_wait(w->stop);
  return NULL;
}

/* One repetition's totals. */
typedef struct rep {
  uint64_t ops, allowed, errors, allocs;
  double wall_ns;
} rep;

static double rep_ops_per_sec(const rep *r) {
  return r->wall_ns > 0 ? (double)r->ops * 1e9 / r->wall_ns : 0;
}

/* A case: threads, each with its key set, on one limiter. */
typedef struct job {
  rl_limiter *rl;
  int threads;
  const keyset *keys[MAX_THREADS];
  const char *policy;
  size_t warmup;
} job;

static void run_rep(const job *jb, rep *out) {
  pthread_barrier_t start, stop;
  pthread_barrier_init(&start, NULL, (unsigned)jb->threads + 1);
  pthread_barrier_init(&stop, NULL, (unsigned)jb->threads + 1);
  worker w[MAX_THREADS];
  pthread_t tid[MAX_THREADS];
  for (int i = 0; i < jb->threads; i++) {
    w[i] = (worker){jb->rl, jb->keys[i], jb->policy, jb->warmup, &start,
                    &stop,  0,           0,          0};
    pthread_create(&tid[i], NULL, worker_main, &w[i]);
  }
  pthread_barrier_wait(&start);
  uint64_t a0 = bench_alloc_count(), t0 = now_ns();
  pthread_barrier_wait(&stop);
  uint64_t t1 = now_ns(), a1 = bench_alloc_count();
  memset(out, 0, sizeof *out);
  for (int i = 0; i < jb->threads; i++) {
    pthread_join(tid[i], NULL);
    out->ops += w[i].ops;
    out->allowed += w[i].allowed;
    out->errors += w[i].errors;
  }
  out->allocs = a1 - a0;
  out->wall_ns = (double)(t1 - t0);
  pthread_barrier_destroy(&start);
  pthread_barrier_destroy(&stop);
}

/* The summary of several repetitions: the median one by throughput, the
 * best throughput, and allocations over all of them. */
typedef struct summary {
  rep median;
  double best_ops_per_sec;
  uint64_t ops_all, allocs_all, errors_all;
  int threads;
  cpu_load load; /* while the case ran */
} summary;

static int cmp_rep(const void *a, const void *b) {
  double x = rep_ops_per_sec(a), y = rep_ops_per_sec(b);
  return x < y ? -1 : x > y;
}

static void summarize(rep *reps, int n, int threads, summary *s) {
  memset(s, 0, sizeof *s);
  s->threads = threads;
  for (int i = 0; i < n; i++) {
    s->ops_all += reps[i].ops;
    s->allocs_all += reps[i].allocs;
    s->errors_all += reps[i].errors;
  }
  qsort(reps, (size_t)n, sizeof *reps, cmp_rep);
  s->median = reps[n / 2];
  s->best_ops_per_sec = rep_ops_per_sec(&reps[n - 1]);
  if (s->errors_all != 0) {
    g_failed = 1;
  }
}

static void run_job(const job *jb, summary *s) {
  rep reps[MAX_REPS] = {{0}};
  cpu_sample c0, c1;
  cpu_sample_take(&c0);
  for (int i = 0; i < g_opts.reps; i++) {
    run_rep(jb, &reps[i]);
  }
  cpu_sample_take(&c1);
  summarize(reps, g_opts.reps, jb->threads, s);
  cpu_load_between(&c0, &c1, &s->load);
}

static double ns_per_op(const summary *s) {
  const rep *r = &s->median;
  return r->ops ? r->wall_ns * s->threads / (double)r->ops : 0;
}

/* How busy other processes and the hypervisor kept the machine. */
static void j_load(json *j, const cpu_load *l) {
  j_num(j, "others_cpu", l->others);
  j_num(j, "steal", l->steal);
}

/* The fields every measured line has. */
static void j_summary(json *j, const summary *s) {
  j_num(j, "ns_per_op", ns_per_op(s));
  j_allocs(j, s->allocs_all, s->ops_all);
  j_num(j, "ops_per_sec", rep_ops_per_sec(&s->median));
  j_num(j, "ops_per_sec_best", s->best_ops_per_sec);
  j_num(j, "allowed_frac",
        s->median.ops ? (double)s->median.allowed / (double)s->median.ops : 0);
  j_u64(j, "reps", (uint64_t)g_opts.reps);
  j_u64(j, "errors", s->errors_all);
  j_load(j, &s->load);
}

/* target "allocs_per_op==0" plus, when ns_target > 0, "ns_per_op<=X". */
static void j_targets(json *j, const summary *s, double ns_target) {
  int allocs_ok = bench_alloc_enabled() && s->allocs_all == 0;
  if (ns_target <= 0) {
    j_str(j, "target", "allocs_per_op==0");
    j_bool(j, "pass", allocs_ok);
    return;
  }
  int ns_ok = ns_per_op(s) <= ns_target;
  j_str(j, "target", "ns_per_op<=150 && allocs_per_op==0");
  j_bool(j, "pass_ns_per_op", ns_ok);
  j_bool(j, "pass_allocs_per_op", allocs_ok);
  j_bool(j, "pass", ns_ok && allocs_ok);
}

/* ------------------------------------------------------------------------ */
/* Cases                                                                    */
/* ------------------------------------------------------------------------ */

static const char NOTE_REAL[] =
    "real clock (CLOCK_REALTIME), window 1e6/1s: windows roll, hot key is "
    "admitted then denied";

/* (1) one hot key, single window, 1 thread. */
static void case_hot_key(const keyset *hot) {
  for (size_t i = 0; i < N_ALGS; i++) {
    rl_limiter *rl = make_single(&ALGS[i]);
    job jb = {rl, 1, {hot}, NULL, HOT_WARMUP};
    summary s;
    run_job(&jb, &s);
    json j;
    j_begin(&j, "hot_key", 1);
    j_alg(&j, &ALGS[i]);
    j_u64(&j, "keys", 1);
    j_summary(&j, &s);
    j_str(&j, "api", "rl_allow");
    j_str(&j, "note", NOTE_REAL);
    j_targets(&j, &s, TARGET_HOT_NS);
    j_end(&j);
    rl_free(rl);
  }
}

/* Bytes malloc has handed out: arena chunks plus mmapped ones (large bucket
 * arrays are mmapped). */
static size_t heap_in_use(void) {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

/* Memory figures of one insertion run. */
typedef struct mem_run {
  uint64_t ops, allocs, errors;
  double wall_ns;
  size_t rss, heap; /* growth */
  rl_memory_stats st;
  cpu_load load;
} mem_run;

/* Inserts every key of ks once, measuring time, allocations and memory. */
static void insert_all(rl_limiter *rl, const keyset *ks, mem_run *m) {
  memset(m, 0, sizeof *m);
  malloc_trim(0);
  cpu_sample c0, c1;
  cpu_sample_take(&c0);
  size_t rss0 = rss_bytes(), heap0 = heap_in_use();
  uint64_t a0 = bench_alloc_count(), t0 = now_ns();
  for (size_t i = 0; i < ks->n; i++) {
    rl_decision d;
    if (rl_allow(rl, key_at(ks, i), ks->len, &d) != RL_OK) {
      m->errors++;
    }
  }
  uint64_t t1 = now_ns(), a1 = bench_alloc_count();
  m->rss = rss_bytes() - rss0;
  m->heap = heap_in_use() - heap0;
  m->ops = ks->n;
  m->allocs = a1 - a0;
  m->wall_ns = (double)(t1 - t0);
  rl_memory_stats_get(rl, &m->st);
  cpu_sample_take(&c1);
  cpu_load_between(&c0, &c1, &m->load);
  if (m->errors != 0) {
    g_failed = 1;
  }
}

static void emit_memory(const alg_case *a, const keyset *ks, const mem_run *m) {
  double n = (double)ks->n, per_key = (double)m->rss / n;
  json j;
  j_begin(&j, "memory_1m_keys", 1);
  j_alg(&j, a);
  j_u64(&j, "keys", m->st.keys);
  j_num(&j, "ns_per_op", m->wall_ns / n);
  j_allocs(&j, m->allocs, m->ops);
  j_num(&j, "ops_per_sec", n * 1e9 / m->wall_ns);
  j_num(&j, "bytes_per_key", per_key);
  j_num(&j, "heap_bytes_per_key", (double)m->heap / n);
  j_num(&j, "store_bytes_per_key",
        m->st.keys ? (double)m->st.bytes / (double)m->st.keys : 0);
  j_u64(&j, "rss_growth_bytes", m->rss);
  j_u64(&j, "store_bytes", m->st.bytes);
  j_u64(&j, "store_max_bytes", m->st.max_bytes);
  j_u64(&j, "evicted", m->st.evicted_expired + m->st.evicted_live);
  j_u64(&j, "key_len", ks->len);
  j_u64(&j, "errors", m->errors);
  j_load(&j, &m->load);
  j_str(&j, "note",
        "ns/allocs per op are of inserting a new key; "
        "bytes_per_key = RSS growth (/proc/self/statm) / keys; "
        "window 100/1h: no key expires during the run (GCRA's TAT "
        "moves 36 s per unit)");
  j_str(&j, "target", "bytes_per_key<=100");
  j_bool(&j, "pass", per_key <= TARGET_BYTES_PER_KEY);
  j_end(&j);
}

/* (2) the same N keys, known now: round-robin decisions, 1 thread. */
static void known_keys(rl_limiter *rl, const alg_case *a, const keyset *ks) {
  job jb = {rl, 1, {ks}, NULL, 0};
  summary s;
  run_job(&jb, &s);
  json j;
  j_begin(&j, "distinct_keys_1m", 1);
  j_alg(&j, a);
  j_u64(&j, "keys", ks->n);
  j_summary(&j, &s);
  j_str(&j, "note",
        "round-robin over N pre-inserted keys, real clock, "
        "window 100/1h (every decision admitted)");
  j_targets(&j, &s, 0);
  j_end(&j);
}

/* (6) + (2): memory per key, then decisions on those keys. */
static void case_memory(const keyset *ks) {
  rl_window w = {MEM_LIMIT, HOUR_MS, 0};
  for (size_t i = 0; i < N_MEM_ALGS; i++) {
    rl_limiter *rl = make_limiter(&MEM_ALGS[i], NULL, &w, 1, MEM_BUDGET);
    mem_run m;
    insert_all(rl, ks, &m);
    emit_memory(&MEM_ALGS[i], ks, &m);
    known_keys(rl, &MEM_ALGS[i], ks);
    rl_free(rl);
    malloc_trim(0);
  }
}

/* (3) two windows, 100/min + 1000/h, one hot key, through rl_decide. */
static void case_two_windows(const keyset *hot) {
  rl_window w[2] = {{100, 60000, 0}, {1000, 3600000, 0}};
  for (size_t i = 0; i < N_ALGS; i++) {
    rl_limiter *rl = make_limiter(&ALGS[i], "two_windows", w, 2, 0);
    job jb = {rl, 1, {hot}, "two_windows", HOT_WARMUP};
    summary s;
    run_job(&jb, &s);
    json j;
    j_begin(&j, "two_windows_hot_key", 1);
    j_alg(&j, &ALGS[i]);
    j_u64(&j, "keys", 1);
    j_summary(&j, &s);
    j_str(&j, "api", "rl_decide");
    j_str(&j, "note",
          "100/min + 1000/h, real clock: after 100 admissions "
          "the key is denied (the common case measured)");
    j_targets(&j, &s, 0);
    j_end(&j);
    rl_free(rl);
  }
}

static void emit_scaling_line(const alg_case *a, const summary *s,
                              size_t keys) {
  json j;
  j_begin(&j, "distinct_keys", s->threads);
  j_alg(&j, a);
  j_u64(&j, "keys", keys);
  j_summary(&j, s);
  j_str(&j, "note",
        "each thread its own 4096 keys, round-robin, real "
        "clock, window 1e6/1h (no key expires; all admitted)");
  j_targets(&j, s, 0);
  j_end(&j);
}

/* Runs 1-thread and 2-thread repetitions interleaved, so that background
 * load hits both alike. fn(ctx, threads, out) runs one repetition. */
typedef void (*rep_fn)(const void *ctx, int threads, rep *out);

static void interleaved(rep_fn fn, const void *ctx, summary *s1, summary *s2) {
  rep r1[MAX_REPS] = {{0}}, r2[MAX_REPS] = {{0}};
  cpu_sample c0, c1;
  cpu_sample_take(&c0);
  for (int k = 0; k < g_opts.reps; k++) {
    fn(ctx, 1, &r1[k]);
    fn(ctx, 2, &r2[k]);
  }
  cpu_sample_take(&c1);
  summarize(r1, g_opts.reps, 1, s1);
  summarize(r2, g_opts.reps, 2, s2);
  cpu_load_between(&c0, &c1, &s1->load);
  s2->load = s1->load;
}

/* The 2-thread / 1-thread throughput line. a is NULL for calibrations,
 * which have no target. */
static void emit_ratio(const char *name, const alg_case *a, const summary *one,
                       const summary *two, const char *note) {
  double r1 = rep_ops_per_sec(&one->median);
  double r2 = rep_ops_per_sec(&two->median);
  double ratio = r1 > 0 ? r2 / r1 : 0;
  json j;
  j_begin(&j, name, 2);
  if (a != NULL) {
    j_alg(&j, a);
  }
  j_num(&j, "ns_per_op", ns_per_op(two));
  j_allocs(&j, two->allocs_all, a != NULL ? two->ops_all : 0);
  j_num(&j, "ops_per_sec", r2);
  j_num(&j, "ops_per_sec_1t", r1);
  j_num(&j, "ratio", ratio);
  j_num(&j, "ratio_best",
        one->best_ops_per_sec > 0
            ? two->best_ops_per_sec / one->best_ops_per_sec
            : 0);
  j_load(&j, &two->load);
  j_str(&j, "note", note);
  if (a != NULL) {
    j_str(&j, "target", "ratio>=1.6");
    j_bool(&j, "pass", ratio >= TARGET_SCALING);
    j_bool(&j, "pass_best",
           one->best_ops_per_sec > 0 &&
               two->best_ops_per_sec >= TARGET_SCALING * one->best_ops_per_sec);
  }
  j_end(&j);
}

/* (4) 1 and 2 threads on distinct keys; repetitions interleaved so that
 * background load hits both alike. */
static void scaling_rep(const void *ctx, int threads, rep *out) {
  const job *jobs = ctx;
  run_rep(&jobs[threads - 1], out);
}

/* (4) 1 and 2 threads on distinct keys. */
static void case_scaling(const keyset *per_thread) {
  for (size_t i = 0; i < N_ALGS; i++) {
    rl_window w = {1000000, HOUR_MS, 0};
    rl_limiter *rl = make_limiter(&ALGS[i], NULL, &w, 1, 0);
    job jobs[2] = {
        {rl, 1, {&per_thread[0]}, NULL, THREAD_KEYS},
        {rl, 2, {&per_thread[0], &per_thread[1]}, NULL, THREAD_KEYS}};
    summary s1, s2;
    interleaved(scaling_rep, jobs, &s1, &s2);
    emit_scaling_line(&ALGS[i], &s1, per_thread[0].n);
    emit_scaling_line(&ALGS[i], &s2, per_thread[0].n * 2);
    emit_ratio("scaling_distinct_keys", &ALGS[i], &s1, &s2,
               "2-thread / 1-thread aggregate throughput (median "
               "repetitions; ratio_best: best ones)");
    rl_free(rl);
  }
}

/* Calibration for (4), not the library: a loop of mutex lock, clock read,
 * unlock. "private": each thread its own mutex, nothing shared (what 2 cores
 * give here). "shared": a mutex picked at random among CALIB_STRIPES, each on
 * its own cache line, as the store's stripes are: the cost of moving lock
 * lines between the cores, which varies with where the host runs them. */
#define CALIB_STRIPES 64

typedef struct padded_mutex {
  _Alignas(64) pthread_mutex_t m;
} padded_mutex;

static padded_mutex g_calib_locks[CALIB_STRIPES];

typedef struct calib {
  _Alignas(64) pthread_mutex_t lock;
  pthread_barrier_t *start;
  int shared;
  uint64_t ops;
} calib;

static inline pthread_mutex_t *calib_lock(calib *c, uint64_t *x) {
  if (!c->shared) {
    return &c->lock;
  }
  *x ^= *x << 13; /* xorshift64 */
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return &g_calib_locks[*x % CALIB_STRIPES].m;
}

static void *calib_main(void *arg) {
  calib *c = arg;
  uint64_t ops = 0, t0, x = (uint64_t)(uintptr_t)c | 1;
  pthread_barrier_wait(c->start);
  t0 = now_ns();
  do {
    for (int i = 0; i < CHUNK; i++) {
      struct timespec ts;
      pthread_mutex_t *m = calib_lock(c, &x);
      pthread_mutex_lock(m);
      clock_gettime(CLOCK_REALTIME, &ts);
      pthread_mutex_unlock(m);
    }
    ops += CHUNK;
  } while ((double)(now_ns() - t0) < g_opts.rep_ns);
  c->ops = ops;
  return NULL;
}

static void calib_rep(int threads, int shared, rep *out) {
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
  calib c[MAX_THREADS];
  pthread_t tid[MAX_THREADS];
  for (int i = 0; i < threads; i++) {
    pthread_mutex_init(&c[i].lock, NULL);
    c[i].start = &start;
    c[i].shared = shared;
    pthread_create(&tid[i], NULL, calib_main, &c[i]);
  }
  pthread_barrier_wait(&start);
  uint64_t a0 = bench_alloc_count(), t0 = now_ns();
  memset(out, 0, sizeof *out);
  for (int i = 0; i < threads; i++) {
    pthread_join(tid[i], NULL);
    out->ops += c[i].ops;
    pthread_mutex_destroy(&c[i].lock);
  }
  out->wall_ns = (double)(now_ns() - t0);
  out->allocs = bench_alloc_count() - a0; /* includes thread exit */
  pthread_barrier_destroy(&start);
}

static void calib_rep_private(const void *ctx, int threads, rep *out) {
  (void)ctx;
  calib_rep(threads, 0, out);
}

static void calib_rep_shared(const void *ctx, int threads, rep *out) {
  (void)ctx;
  calib_rep(threads, 1, out);
}

static void case_baseline(void) {
  summary s1, s2;
  interleaved(calib_rep_private, NULL, &s1, &s2);
  emit_ratio("scaling_baseline", NULL, &s1, &s2,
             "calibration, not the library: per thread a private mutex "
             "lock + clock_gettime + unlock, nothing shared");
  interleaved(calib_rep_shared, NULL, &s1, &s2);
  emit_ratio("scaling_baseline_shared_locks", NULL, &s1, &s2,
             "calibration, not the library: lock one of 64 shared "
             "line-aligned mutexes at random + clock_gettime + unlock");
}

/* (5) 2 threads on one hot key: contention on one stripe lock. */
static void case_contention(const keyset *hot) {
  for (size_t i = 0; i < N_ALGS; i++) {
    rl_limiter *rl = make_single(&ALGS[i]);
    job jb = {rl, 2, {hot, hot}, NULL, HOT_WARMUP};
    summary s;
    run_job(&jb, &s);
    json j;
    j_begin(&j, "contention_hot_key", 2);
    j_alg(&j, &ALGS[i]);
    j_u64(&j, "keys", 1);
    j_summary(&j, &s);
    j_str(&j, "note",
          "informative: both threads on the same key and "
          "stripe lock; real clock, window 1e6/1s");
    j_targets(&j, &s, 0);
    j_end(&j);
    rl_free(rl);
  }
}

int main(void) {
  opts_init();
  keyset hot, many, per_thread[MAX_THREADS];
  keyset_make(&hot, "", 1);
  keyset_make(&many, "", g_opts.mem_keys);
  keyset_make(&per_thread[0], "t0:", THREAD_KEYS);
  keyset_make(&per_thread[1], "t1:", THREAD_KEYS);
  if (want("hot_key")) {
    case_hot_key(&hot);
  }
  if (want("memory")) {
    case_memory(&many);
  }
  if (want("two_windows")) {
    case_two_windows(&hot);
  }
  if (want("baseline")) {
    case_baseline();
  }
  if (want("scaling")) {
    case_scaling(per_thread);
  }
  if (want("contention")) {
    case_contention(&hot);
  }
  free(hot.buf);
  free(many.buf);
  free(per_thread[0].buf);
  free(per_thread[1].buf);
  return g_failed ? 1 : 0;
}
