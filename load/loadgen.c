/*
 * loadgen.c - an open-loop HTTP load generator for ratelimitd's
 * POST /v1/check: a constant arrival rate, keep-alive connections, a
 * log-linear latency histogram, one JSON line of results.
 *
 *   loadgen --target 127.0.0.1:8080 [--target ...] --rate 20000
 *           --duration 10 [--warmup 2] [--connections 64] [--threads 1]
 *           [--dist random|hot|enum] [--keys 100000] [--hot-share 0.9]
 *           [--policy bench] [--label TEXT] [--hist-out FILE]
 *
 * Open loop and coordinated omission: request i is due at start + i/rate
 * whether or not earlier ones were answered. Its latency is measured from
 * that due time, not from when a free connection finally sent it, so a
 * server that stalls is charged for every request that should have been
 * sent during the stall (what wrk's closed loop hides). Requests still
 * unsent when the run ends are reported as "unsent" (a sign the offered
 * rate was not sustained).
 *
 * Key distributions: random (uniform over --keys keys), hot (a share of
 * requests on one key, the rest random), enum (every request a new key,
 * as an enumeration attack would send).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_TARGETS 16
#define MAX_CONNS 4096
#define HIST_SUB 64
#define HIST_BUCKETS (2 * HIST_SUB + 40 * HIST_SUB)

/* ---- latency histogram: exact below 128 us, then 64 steps per octave -- */

typedef struct hist {
  uint64_t counts[HIST_BUCKETS];
  uint64_t n;
  uint64_t max;
} hist;

static size_t hist_index(uint64_t us) {
  if (us < 2 * HIST_SUB) {
    return (size_t)us;
  }
  int e = 63 - __builtin_clzll(us); /* >= 7 */
  size_t idx = 2 * HIST_SUB + (size_t)(e - 7) * HIST_SUB +
               (size_t)((us >> (e - 6)) - HIST_SUB);
  return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* The middle of the bucket's range, in us. */
static double hist_value(size_t idx) {
  if (idx < 2 * HIST_SUB) {
    return (double)idx;
  }
  int e = (int)((idx - 2 * HIST_SUB) / HIST_SUB) + 7;
  uint64_t sub = (idx - 2 * HIST_SUB) % HIST_SUB + HIST_SUB;
  double width = (double)(1ULL << (e - 6));
  return (double)(sub << (e - 6)) + width / 2;
}

static void hist_add(hist *h, uint64_t us) {
  h->counts[hist_index(us)]++;
  h->n++;
  if (us > h->max) {
    h->max = us;
  }
}

static double hist_percentile(const hist *h, double p) {
  if (h->n == 0) {
    return 0;
  }
  uint64_t rank = (uint64_t)(p / 100.0 * (double)h->n + 0.5);
  if (rank < 1) {
    rank = 1;
  }
  uint64_t seen = 0;
  for (size_t i = 0; i < HIST_BUCKETS; i++) {
    seen += h->counts[i];
    if (seen >= rank) {
      double v = hist_value(i);
      return v > (double)h->max ? (double)h->max : v;
    }
  }
  return (double)h->max;
}

/* ---- options ----------------------------------------------------------- */

typedef enum dist { DIST_RANDOM, DIST_HOT, DIST_ENUM } dist;

typedef struct options {
  struct sockaddr_storage targets[MAX_TARGETS];
  socklen_t target_len[MAX_TARGETS];
  int n_targets;
  double rate;
  double duration;
  double warmup;
  int connections;
  int threads;
  dist dist;
  uint64_t keys;
  double hot_share;
  const char *policy;
  const char *label;
  const char *hist_out;
} options;

static options opt = {.rate = 1000,
                      .duration = 10,
                      .connections = 64,
                      .threads = 1,
                      .keys = 100000,
                      .hot_share = 0.9,
                      .policy = "bench",
                      .label = ""};

static const char *dist_name(dist d) {
  return d == DIST_HOT ? "hot" : d == DIST_ENUM ? "enum" : "random";
}

/* ---- per-thread state ---------------------------------------------------- */

typedef struct conn {
  int fd;
  int target;
  int busy;
  uint64_t due_ns; /* when the request in flight was due */
  size_t len;
  char buf[8192];
} conn;

typedef struct worker {
  int id;
  pthread_t thread;
  double rate;
  int n_conns;
  conn *conns;
  int *free_stack;
  int n_free;
  int epfd;
  uint64_t rng;
  uint64_t enum_next;
  uint64_t start_ns;  /* first request due (after warm-up starts) */
  uint64_t record_ns; /* requests due before this are warm-up */
  uint64_t total;     /* requests to send, warm-up included */
  uint64_t next;      /* index of the next request to send */
  uint64_t done;      /* answered (recorded or not) */
  uint64_t s200, s429, sother, errors, idle_closed;
  hist h;
} worker;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

static int conn_open(worker *w, conn *c) {
  const struct sockaddr_storage *a = &opt.targets[c->target];
  c->fd = socket(a->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    return -1;
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (const struct sockaddr *)a, opt.target_len[c->target]) !=
      0) {
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev);
  c->len = 0;
  return 0;
}

static void conn_reset(worker *w, conn *c) {
  if (c->fd >= 0) {
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
  }
  c->fd = -1;
  c->len = 0;
}

static int format_request(worker *w, char *out, size_t cap) {
  char key[64];
  uint64_t r = xorshift(&w->rng);
  switch (opt.dist) {
  case DIST_HOT:
    if ((double)(r % 1000000) < opt.hot_share * 1e6) {
      snprintf(key, sizeof key, "hot");
    } else {
      snprintf(key, sizeof key, "k%llu",
               (unsigned long long)(xorshift(&w->rng) % opt.keys));
    }
    break;
  case DIST_ENUM:
    snprintf(key, sizeof key, "enum:%d:%llu", w->id,
             (unsigned long long)w->enum_next++);
    break;
  default:
    snprintf(key, sizeof key, "k%llu", (unsigned long long)(r % opt.keys));
  }
  char body[256];
  int blen = snprintf(body, sizeof body, "{\"policy\":\"%s\",\"key\":\"%s\"}",
                      opt.policy, key);
  return snprintf(out, cap,
                  "POST /v1/check HTTP/1.1\r\nHost: loadgen\r\n"
                  "Content-Type: application/json\r\n"
                  "Content-Length: %d\r\n\r\n%s",
                  blen, body);
}

static uint64_t due_of(const worker *w, uint64_t i) {
  return w->start_ns + (uint64_t)((double)i * 1e9 / w->rate);
}

/* Sends every request that is due, as long as connections are free. */
static void send_due(worker *w, uint64_t now) {
  char req[512];
  while (w->next < w->total && due_of(w, w->next) <= now && w->n_free > 0) {
    conn *c = &w->conns[w->free_stack[w->n_free - 1]];
    if (c->fd < 0 && conn_open(w, c) != 0) {
      w->errors++;
      return; /* retried at the next wake-up; the due time keeps running */
    }
    int len = format_request(w, req, sizeof req);
    if (send(c->fd, req, (size_t)len, MSG_NOSIGNAL) != len) {
      w->errors++;
      conn_reset(w, c);
      continue;
    }
    w->n_free--;
    c->busy = 1;
    c->due_ns = due_of(w, w->next);
    w->next++;
  }
}

static void complete(worker *w, conn *c, int status) {
  uint64_t t = now_ns();
  if (c->due_ns >= w->record_ns) {
    hist_add(&w->h, (t - c->due_ns) / 1000);
    if (status == 200) {
      w->s200++;
    } else if (status == 429) {
      w->s429++;
    } else {
      w->sother++;
    }
  }
  w->done++;
  c->busy = 0;
  w->free_stack[w->n_free++] = (int)(c - w->conns);
}

/* Reads what arrived; completes the response when it is whole. */
static void on_readable(worker *w, conn *c) {
  ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      return;
    }
    int was_busy = c->busy;
    conn_reset(w, c);
    if (was_busy) {
      w->errors++;
      complete(w, c, -1);
    } else {
      /* The server closed an idle keep-alive connection (its idle
       * timeout): not an error; it is reopened when next needed. */
      w->idle_closed++;
    }
    return;
  }
  c->len += (size_t)n;
  c->buf[c->len] = '\0';
  char *end = strstr(c->buf, "\r\n\r\n");
  if (end == NULL) {
    return;
  }
  const char *cl = strcasestr(c->buf, "\r\ncontent-length:");
  size_t body = cl != NULL && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
  size_t need = (size_t)(end + 4 - c->buf) + body;
  if (c->len < need) {
    return;
  }
  int status = c->len > 12 ? atoi(c->buf + 9) : -1;
  c->len = 0;
  if (c->busy) {
    complete(w, c, status);
  }
}

static void *run_worker(void *arg) {
  worker *w = arg;
  struct epoll_event evs[256];
  uint64_t end_ns = due_of(w, w->total);
  uint64_t drain_deadline = end_ns + 2000000000ULL;
  for (;;) {
    uint64_t t = now_ns();
    send_due(w, t);
    if (w->next >= w->total && w->n_free == w->n_conns) {
      break;
    }
    if (t > drain_deadline) {
      break;
    }
    struct timespec to = {0, 1000000}; /* 1 ms unless a request is due */
    if (w->next < w->total && w->n_free > 0) {
      uint64_t due = due_of(w, w->next);
      uint64_t wait = due > t ? due - t : 0;
      to.tv_sec = (time_t)(wait / 1000000000ULL);
      to.tv_nsec = (long)(wait % 1000000000ULL);
    }
    int n = epoll_pwait2(w->epfd, evs, 256, &to, NULL);
    for (int i = 0; i < n; i++) {
      on_readable(w, evs[i].data.ptr);
    }
  }
  return NULL;
}

/* ---- main ---------------------------------------------------------------- */

static int add_target(const char *spec) {
  char host[256];
  const char *colon = strrchr(spec, ':');
  if (colon == NULL || opt.n_targets == MAX_TARGETS ||
      (size_t)(colon - spec) >= sizeof host) {
    return -1;
  }
  memcpy(host, spec, (size_t)(colon - spec));
  host[colon - spec] = '\0';
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
  struct addrinfo *ai = NULL;
  if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || ai == NULL) {
    return -1;
  }
  memcpy(&opt.targets[opt.n_targets], ai->ai_addr, ai->ai_addrlen);
  opt.target_len[opt.n_targets++] = ai->ai_addrlen;
  freeaddrinfo(ai);
  return 0;
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen --target HOST:PORT [--target ...] --rate R "
          "--duration S\n"
          "               [--warmup S] [--connections C] [--threads T]\n"
          "               [--dist random|hot|enum] [--keys K] "
          "[--hot-share F]\n"
          "               [--policy NAME] [--label TEXT] [--hist-out FILE]\n");
  exit(2);
}

static void parse(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (v == NULL) {
      usage();
    }
    i++;
    if (strcmp(a, "--target") == 0) {
      if (add_target(v) != 0) {
        fprintf(stderr, "loadgen: bad target %s\n", v);
        exit(2);
      }
    } else if (strcmp(a, "--rate") == 0) {
      opt.rate = atof(v);
    } else if (strcmp(a, "--duration") == 0) {
      opt.duration = atof(v);
    } else if (strcmp(a, "--warmup") == 0) {
      opt.warmup = atof(v);
    } else if (strcmp(a, "--connections") == 0) {
      opt.connections = atoi(v);
    } else if (strcmp(a, "--threads") == 0) {
      opt.threads = atoi(v);
    } else if (strcmp(a, "--keys") == 0) {
      opt.keys = strtoull(v, NULL, 10);
    } else if (strcmp(a, "--hot-share") == 0) {
      opt.hot_share = atof(v);
    } else if (strcmp(a, "--policy") == 0) {
      opt.policy = v;
    } else if (strcmp(a, "--label") == 0) {
      opt.label = v;
    } else if (strcmp(a, "--hist-out") == 0) {
      opt.hist_out = v;
    } else if (strcmp(a, "--dist") == 0) {
      opt.dist = strcmp(v, "hot") == 0    ? DIST_HOT
                 : strcmp(v, "enum") == 0 ? DIST_ENUM
                                          : DIST_RANDOM;
      if (opt.dist == DIST_RANDOM && strcmp(v, "random") != 0) {
        usage();
      }
    } else {
      usage();
    }
  }
  if (opt.n_targets == 0 || opt.rate <= 0 || opt.duration <= 0 ||
      opt.threads < 1 || opt.connections < opt.threads ||
      opt.connections > MAX_CONNS || opt.keys == 0) {
    usage();
  }
}

static void write_hist(const hist *h) {
  FILE *f = fopen(opt.hist_out, "w");
  if (f == NULL) {
    perror(opt.hist_out);
    return;
  }
  /* HdrHistogram's percentile distribution: value, percentile, 1/(1-p). */
  fprintf(f, "# latency_us percentile one_over_one_minus_p\n");
  static const double ps[] = {0,      50,     75,      90,     95,
                              99,     99.5,   99.9,    99.95,  99.99,
                              99.995, 99.999, 99.9995, 99.9999};
  for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
    double p = ps[i];
    fprintf(f, "%.1f %.4f %.1f\n", hist_percentile(h, p > 0 ? p : 0.0001), p,
            1.0 / (1.0 - p / 100.0));
  }
  fclose(f);
}

int main(int argc, char **argv) {
  parse(argc, argv);
  worker *ws = calloc((size_t)opt.threads, sizeof *ws);
  hist *total = calloc(1, sizeof *total);
  if (ws == NULL || total == NULL) {
    return 1;
  }
  uint64_t start = now_ns() + 20000000ULL; /* 20 ms to set up */
  double secs = opt.warmup + opt.duration;
  for (int t = 0; t < opt.threads; t++) {
    worker *w = &ws[t];
    w->id = t;
    w->rate = opt.rate / opt.threads;
    w->n_conns = opt.connections / opt.threads;
    w->conns = calloc((size_t)w->n_conns, sizeof *w->conns);
    w->free_stack = calloc((size_t)w->n_conns, sizeof *w->free_stack);
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->conns == NULL || w->free_stack == NULL || w->epfd < 0) {
      return 1;
    }
    for (int i = 0; i < w->n_conns; i++) {
      w->conns[i].fd = -1;
      w->conns[i].target = (t * w->n_conns + i) % opt.n_targets;
      w->free_stack[w->n_free++] = w->n_conns - 1 - i;
    }
    w->rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)(t + 1) * 0xBF58476D1CE4E5B9ULL;
    w->start_ns = start;
    w->record_ns = start + (uint64_t)(opt.warmup * 1e9);
    w->total = (uint64_t)(secs * w->rate);
    pthread_create(&w->thread, NULL, run_worker, w);
  }
  uint64_t s200 = 0, s429 = 0, sother = 0, errors = 0, unsent = 0;
  uint64_t idle_closed = 0;
  for (int t = 0; t < opt.threads; t++) {
    worker *w = &ws[t];
    pthread_join(w->thread, NULL);
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
      total->counts[i] += w->h.counts[i];
    }
    total->n += w->h.n;
    if (w->h.max > total->max) {
      total->max = w->h.max;
    }
    s200 += w->s200;
    s429 += w->s429;
    sother += w->sother;
    errors += w->errors;
    idle_closed += w->idle_closed;
    unsent += w->total - w->next + (uint64_t)(w->n_conns - w->n_free);
    for (int i = 0; i < w->n_conns; i++) {
      conn_reset(w, &w->conns[i]);
    }
    close(w->epfd);
    free(w->conns);
    free(w->free_stack);
  }
  if (opt.hist_out != NULL) {
    write_hist(total);
  }
  printf("{\"label\":\"%s\",\"dist\":\"%s\",\"targets\":%d,\"threads\":%d,"
         "\"connections\":%d,\"target_rps\":%.0f,\"achieved_rps\":%.0f,"
         "\"completed\":%llu,\"status_200\":%llu,\"status_429\":%llu,"
         "\"status_other\":%llu,\"errors\":%llu,\"idle_closed\":%llu,"
         "\"unsent\":%llu,"
         "\"p50_us\":%.0f,\"p90_us\":%.0f,\"p99_us\":%.0f,\"p999_us\":%.0f,"
         "\"max_us\":%llu,\"seconds\":%.1f}\n",
         opt.label, dist_name(opt.dist), opt.n_targets, opt.threads,
         opt.connections, opt.rate, (double)total->n / opt.duration,
         (unsigned long long)total->n, (unsigned long long)s200,
         (unsigned long long)s429, (unsigned long long)sother,
         (unsigned long long)errors, (unsigned long long)idle_closed,
         (unsigned long long)unsent, hist_percentile(total, 50),
         hist_percentile(total, 90), hist_percentile(total, 99),
         hist_percentile(total, 99.9), (unsigned long long)total->max,
         opt.duration);
  free(ws);
  free(total);
  return 0;
}
