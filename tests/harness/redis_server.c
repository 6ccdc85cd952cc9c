/*
 * redis_server.c - starts and stops real redis-server processes for tests
 * (see redis_server.h).
 */
#include "redis_server.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SERVERS 64
#define START_TRIES 8

/* What the atexit handler must clean up: copies, not pointers, since a
 * test's rlt_redis may live on a stack that a failed assertion unwound. */
static pid_t live_pids[MAX_SERVERS];
static char live_dirs[MAX_SERVERS][128];
static int atexit_done;
static int pending_fd = -1; /* connection of a wait = 0 command */
static char tls_dir[128];

int64_t rlt_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rlt_sleep_ms(int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

int64_t rlt_slack_ms(void) {
  int64_t slack = 25;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  slack *= 4;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
  slack *= 4;
#endif
#endif
  const char *scale = getenv("RLT_TIME_SCALE");
  if (scale != NULL && atoi(scale) > 0)
    slack *= atoi(scale);
  return slack;
}

/* ---- cleanup ------------------------------------------------------------ */

static void remove_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  struct dirent *e;
  char path[512];
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

static void stop_all(void) {
  for (int i = 0; i < MAX_SERVERS; i++) {
    if (live_pids[i] > 0) {
      kill(live_pids[i], SIGKILL);
      waitpid(live_pids[i], NULL, 0);
    }
    if (live_dirs[i][0] != '\0')
      remove_tree(live_dirs[i]);
  }
  if (tls_dir[0] != '\0')
    remove_tree(tls_dir);
  if (pending_fd >= 0)
    close(pending_fd);
}

static int is_redis(pid_t pid) {
  char path[64], comm[64] = "";
  snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  int ok = fgets(comm, sizeof(comm), f) != NULL &&
           strncmp(comm, "redis-server", 12) == 0;
  fclose(f);
  return ok;
}

/* Kills servers left by test processes that died without cleaning up. */
static void reap_stale(void) {
  DIR *d = opendir("/tmp");
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    int owner = 0;
    if (sscanf(e->d_name, "rlt-redis.%d.", &owner) != 1 || owner <= 0 ||
        (kill(owner, 0) == 0 || errno != ESRCH))
      continue;
    char path[512];
    snprintf(path, sizeof(path), "/tmp/%s/redis.pid", e->d_name);
    FILE *f = fopen(path, "r");
    int pid = 0;
    if (f != NULL) {
      if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
      fclose(f);
    }
    if (pid > 0 && is_redis(pid))
      kill(pid, SIGKILL);
    snprintf(path, sizeof(path), "/tmp/%s", e->d_name);
    remove_tree(path);
  }
  closedir(d);
}

static void install_cleanup(void) {
  if (!atexit_done) {
    atexit_done = 1;
    reap_stale();
    atexit(stop_all);
  }
}

/* Registers (on) or forgets a server process. */
static void track_pid(pid_t pid, int on) {
  install_cleanup();
  for (int i = 0; i < MAX_SERVERS; i++) {
    if (on && live_pids[i] == 0) {
      live_pids[i] = pid;
      return;
    }
    if (!on && live_pids[i] == pid)
      live_pids[i] = 0;
  }
}

/* Registers (on) or forgets a temporary directory. */
static void track_dir(const char *dir, int on) {
  install_cleanup();
  for (int i = 0; i < MAX_SERVERS; i++) {
    if (on && live_dirs[i][0] == '\0') {
      snprintf(live_dirs[i], sizeof(live_dirs[i]), "%s", dir);
      return;
    }
    if (!on && strcmp(live_dirs[i], dir) == 0)
      live_dirs[i][0] = '\0';
  }
}

/* ---- starting ----------------------------------------------------------- */

static uint16_t free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(sa);
  uint16_t port = 0;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
      getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
    port = ntohs(sa.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

static int write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f == NULL)
    return -1;
  fputs(text, f);
  return fclose(f);
}

/* Builds the argument vector; strings live in store. */
static void build_argv(const rlt_redis *r, char store[][200],
                       const char **argv) {
  int n = 0, s = 0;
#define ARG(...) (snprintf(store[s], 200, __VA_ARGS__), argv[n++] = store[s++])
  argv[n++] = "redis-server";
  ARG("--bind");
  ARG("127.0.0.1");
  ARG("--port");
  ARG("%u", r->opts.tls ? 0u : (unsigned)r->port);
  ARG("--save");
  ARG("%s", "");
  ARG("--appendonly");
  ARG("no");
  ARG("--dir");
  ARG("%s", r->dir);
  ARG("--pidfile");
  ARG("%s/redis.pid", r->dir);
  ARG("--logfile");
  ARG("%s/redis.log", r->dir);
  ARG("--enable-debug-command");
  ARG("yes");
  ARG("--protected-mode");
  ARG("no");
  if (r->opts.password) {
    ARG("--requirepass");
    ARG("%s", r->opts.password);
  }
  if (r->opts.acl) {
    ARG("--aclfile");
    ARG("%s/users.acl", r->dir);
  }
  if (r->opts.tls) {
    const char *t = rlt_tls_dir();
    ARG("--tls-port");
    ARG("%u", (unsigned)r->port);
    ARG("--tls-cert-file");
    ARG("%s/server.crt", t);
    ARG("--tls-key-file");
    ARG("%s/server.key", t);
    ARG("--tls-ca-cert-file");
    ARG("%s/ca.crt", t);
    ARG("--tls-auth-clients");
    ARG("%s", r->opts.tls_auth_clients ? "yes" : "no");
  }
  for (size_t i = 0;
       r->opts.extra != NULL && r->opts.extra[i] != NULL && n < 76 && s < 64;
       i++)
    ARG("%s", r->opts.extra[i]);
#undef ARG
  argv[n] = NULL;
}

static pid_t spawn(const rlt_redis *r) {
  char store[64][200];
  const char *argv[80];
  build_argv(r, store, argv);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid != 0)
    return pid;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent)
    _exit(127);
  int devnull = open("/dev/null", O_RDWR);
  dup2(devnull, 0);
  dup2(devnull, 1);
  dup2(devnull, 2);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execvp("redis-server", (char *const *)argv);
  _exit(127);
}

static int log_says(const rlt_redis *r, const char *what) {
  char path[256], line[1024];
  snprintf(path, sizeof(path), "%s/redis.log", r->dir);
  FILE *f = fopen(path, "r");
  int found = 0;
  while (f != NULL && !found && fgets(line, sizeof(line), f) != NULL)
    found = strstr(line, what) != NULL;
  if (f != NULL)
    fclose(f);
  return found;
}

static int connect_port(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons(port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
    return fd;
  if (fd >= 0)
    close(fd);
  return -1;
}

static int answers_ping(const rlt_redis *r) {
  if (r->opts.tls)
    return 1; /* the log line is all we check for TLS */
  int fd = connect_port(r->port);
  char buf[64] = "";
  if (fd < 0)
    return 0;
  ssize_t n = -1;
  if (write(fd, "PING\r\n", 6) == 6)
    n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  return n > 0 && (buf[0] == '+' || strstr(buf, "NOAUTH") != NULL);
}

/* 1 ready, 0 died (maybe port taken), -1 timeout. */
static int wait_ready(rlt_redis *r) {
  int64_t until = rlt_now_ms() + 10000;
  while (rlt_now_ms() < until) {
    int status;
    if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
      r->pid = 0;
      return 0;
    }
    if (log_says(r, "Ready to accept connections") && answers_ping(r))
      return 1;
    rlt_sleep_ms(5);
  }
  return -1;
}

static int launch(rlt_redis *r, int fixed_port) {
  for (int attempt = 0; attempt < START_TRIES; attempt++) {
    if (!fixed_port)
      r->port = free_port();
    char path[256];
    snprintf(path, sizeof(path), "%s/redis.log", r->dir);
    unlink(path);
    r->pid = spawn(r);
    if (r->pid < 0)
      break;
    track_pid(r->pid, 1);
    int rc = wait_ready(r);
    if (rc == 1)
      return 0;
    if (rc == 0)
      track_pid(r->pid, 0);
    if (rc < 0) {
      rlt_redis_kill(r);
      break;
    }
    rlt_sleep_ms(fixed_port ? 100 : 5); /* lost the port: try again */
  }
  fprintf(stderr, "rlt_redis: cannot start redis-server (see %s)\n", r->dir);
  return -1;
}

int rlt_redis_start(rlt_redis *r, const rlt_redis_opts *opts) {
  static const rlt_redis_opts none;
  memset(r, 0, sizeof(*r));
  r->opts = opts ? *opts : none;
  if (r->opts.tls && rlt_tls_dir() == NULL)
    return -1;
  install_cleanup();
  snprintf(r->dir, sizeof(r->dir), "/tmp/rlt-redis.%d.XXXXXX", (int)getpid());
  if (mkdtemp(r->dir) == NULL)
    return -1;
  track_dir(r->dir, 1);
  if (r->opts.acl != NULL) {
    char path[256];
    snprintf(path, sizeof(path), "%s/users.acl", r->dir);
    if (write_file(path, r->opts.acl) != 0)
      return -1;
  }
  return launch(r, 0);
}

int rlt_redis_restart(rlt_redis *r) {
  if (r->pid > 0)
    rlt_redis_kill(r);
  return launch(r, 1);
}

void rlt_redis_kill(rlt_redis *r) {
  if (r->pid <= 0)
    return;
  kill(r->pid, SIGKILL);
  waitpid(r->pid, NULL, 0);
  track_pid(r->pid, 0);
  r->pid = 0;
}

void rlt_redis_stop(rlt_redis *r) {
  if (r->pid > 0) {
    kill(r->pid, SIGCONT);
    kill(r->pid, SIGTERM);
    int64_t until = rlt_now_ms() + 3000;
    while (waitpid(r->pid, NULL, WNOHANG) == 0 && rlt_now_ms() < until)
      rlt_sleep_ms(2);
    if (kill(r->pid, 0) == 0 && is_redis(r->pid))
      rlt_redis_kill(r);
    track_pid(r->pid, 0);
    r->pid = 0;
  }
  if (r->dir[0] != '\0') {
    remove_tree(r->dir);
    track_dir(r->dir, 0);
  }
  r->dir[0] = '\0';
}

void rlt_redis_pause(rlt_redis *r) {
  kill(r->pid, SIGSTOP);
}
void rlt_redis_resume(rlt_redis *r) {
  kill(r->pid, SIGCONT);
}

/* ---- admin commands ----------------------------------------------------- */

static int send_cmd(int fd, const char *const *argv, int argc) {
  char buf[4096];
  size_t n = (size_t)snprintf(buf, sizeof(buf), "*%d\r\n", argc);
  for (int i = 0; i < argc && n < sizeof(buf); i++)
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "$%zu\r\n%s\r\n",
                          strlen(argv[i]), argv[i]);
  return n < sizeof(buf) && write(fd, buf, n) == (ssize_t)n ? 0 : -1;
}

static int read_line(int fd, char *out, size_t outlen) {
  size_t n = 0;
  char ch;
  while (n + 1 < outlen && read(fd, &ch, 1) == 1 && ch != '\n')
    if (ch != '\r')
      out[n++] = ch;
  out[n] = '\0';
  return n > 0 ? 0 : -1;
}

int rlt_redis_cmd(rlt_redis *r, char *out, size_t outlen, int wait, ...) {
  const char *argv[16];
  int argc = 0;
  va_list ap;
  va_start(ap, wait);
  while (argc < 16 && (argv[argc] = va_arg(ap, const char *)) != NULL)
    argc++;
  va_end(ap);
  if (pending_fd >= 0)
    close(pending_fd);
  pending_fd = -1;
  int fd = connect_port(r->port);
  char line[256];
  if (fd < 0)
    return -1;
  if (r->opts.password) {
    const char *auth[2] = {"AUTH", r->opts.password};
    if (send_cmd(fd, auth, 2) != 0 || read_line(fd, line, sizeof(line)) != 0)
      goto fail;
  }
  if (send_cmd(fd, argv, argc) != 0)
    goto fail;
  if (!wait) {
    pending_fd = fd;
    return 0;
  }
  int rc = read_line(fd, out ? out : line, out ? outlen : sizeof(line));
  close(fd);
  return rc;
fail:
  close(fd);
  return -1;
}

/* ---- TLS material ------------------------------------------------------- */

static int run(const char *cmd) {
  char full[1024];
  snprintf(full, sizeof(full), "cd '%s' && { %s; } >/dev/null 2>&1", tls_dir,
           cmd);
  return system(full) == 0 ? 0 : -1;
}

static int make_certs(void) {
  static const char *const steps[] = {
      "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n"
      "extendedKeyUsage=serverAuth\\n' > server.ext",
      "printf 'extendedKeyUsage=clientAuth\\n' > client.ext",
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
      "-nodes -days 2 -subj /CN=rlt-test-ca -keyout ca.key -out ca.crt",
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
      "-nodes -days 2 -subj /CN=rlt-other-ca -keyout other-ca.key "
      "-out other-ca.crt",
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-subj /CN=localhost -keyout server.key -out server.csr",
      "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key "
      "-CAcreateserial -days 2 -extfile server.ext -out server.crt",
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-subj /CN=rlt-client -keyout client.key -out client.csr",
      "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key "
      "-CAcreateserial -days 2 -extfile client.ext -out client.crt",
      "chmod 644 *.key",
  };
  for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
    if (run(steps[i]) != 0) {
      fprintf(stderr, "rlt_tls_dir: failed: %s\n", steps[i]);
      return -1;
    }
  return 0;
}

const char *rlt_tls_dir(void) {
  static int state; /* 0 not tried, 1 ok, -1 failed */
  if (state == 0) {
    install_cleanup(); /* the atexit handler removes the directory */
    snprintf(tls_dir, sizeof(tls_dir), "/tmp/rlt-redis.%d.tlsXXXXXX",
             (int)getpid());
    state = mkdtemp(tls_dir) != NULL && make_certs() == 0 ? 1 : -1;
  }
  return state == 1 ? tls_dir : NULL;
}
