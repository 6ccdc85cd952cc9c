/*
 * redis_cluster.c - a real Redis Cluster for tests (see redis_cluster.h).
 */
#include "redis_cluster.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CLI_MAX_ARGS 48
#define CLI_TIMEOUT_MS 15000

/* Runs redis-cli argv, its stdout into out. Exit status or -1. */
static int run_cli(const char *const *argv, char *out, size_t outlen) {
  int fds[2];
  if (pipe(fds) != 0)
    return -1;
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execvp("redis-cli", (char *const *)argv);
    _exit(127);
  }
  close(fds[1]);
  size_t n = 0;
  char sink[4096];
  for (;;) {
    char *dst = out != NULL && n + 1 < outlen ? out + n : sink;
    size_t room = out != NULL && n + 1 < outlen ? outlen - n - 1 : sizeof sink;
    ssize_t got = read(fds[0], dst, room);
    if (got <= 0)
      break;
    if (dst != sink)
      n += (size_t)got;
  }
  close(fds[0]);
  if (out != NULL && outlen > 0)
    out[n] = '\0';
  int status = 0;
  int64_t until = rlt_now_ms() + CLI_TIMEOUT_MS;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (rlt_now_ms() > until) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    rlt_sleep_ms(1);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int rlt_cluster_cli(rlt_cluster *c, int i, char *out, size_t outlen, ...) {
  const char *argv[CLI_MAX_ARGS];
  char port[8];
  int n = 0;
  snprintf(port, sizeof port, "%u", (unsigned)c->node[i].port);
  argv[n++] = "redis-cli";
  argv[n++] = "-h";
  argv[n++] = "127.0.0.1";
  argv[n++] = "-p";
  argv[n++] = port;
  va_list ap;
  va_start(ap, outlen);
  const char *a;
  while (n < CLI_MAX_ARGS - 1 && (a = va_arg(ap, const char *)) != NULL)
    argv[n++] = a;
  va_end(ap);
  argv[n] = NULL;
  if (c->node[i].pid <= 0)
    return -1;
  return run_cli(argv, out, outlen);
}

int rlt_cluster_start(rlt_cluster *c, int masters, int replicas,
                      int node_timeout_ms) {
  memset(c, 0, sizeof *c);
  c->n = masters * (1 + replicas);
  if (masters < 3 || c->n > RLT_CLUSTER_MAX)
    return -1;
  char timeout[16];
  snprintf(timeout, sizeof timeout, "%d", node_timeout_ms);
  const char *extra[] = {"--cluster-enabled",
                         "yes",
                         "--cluster-config-file",
                         "nodes.conf",
                         "--cluster-node-timeout",
                         timeout,
                         "--cluster-require-full-coverage",
                         "no",
                         "--cluster-replica-validity-factor",
                         "0",
                         NULL};
  rlt_redis_opts o = {.extra = extra};
  for (int i = 0; i < c->n; i++) {
    if (rlt_redis_start(&c->node[i], &o) != 0) {
      rlt_cluster_stop(c);
      return -1;
    }
    c->node[i].opts.extra = NULL; /* extra lives on this stack */
    snprintf(c->addr_text[i], sizeof c->addr_text[i], "127.0.0.1:%u",
             (unsigned)c->node[i].port);
    c->addrs[i] = c->addr_text[i];
  }
  const char *argv[CLI_MAX_ARGS];
  char reps[8];
  int n = 0;
  snprintf(reps, sizeof reps, "%d", replicas);
  argv[n++] = "redis-cli";
  argv[n++] = "--cluster";
  argv[n++] = "create";
  for (int i = 0; i < c->n; i++)
    argv[n++] = c->addr_text[i];
  argv[n++] = "--cluster-replicas";
  argv[n++] = reps;
  argv[n++] = "--cluster-yes";
  argv[n] = NULL;
  char out[8192];
  if (run_cli(argv, out, sizeof out) != 0 ||
      rlt_cluster_wait_ok(c, 30000) != 0) {
    fprintf(stderr, "rlt_cluster: create failed:\n%s\n", out);
    rlt_cluster_stop(c);
    return -1;
  }
  return 0;
}

void rlt_cluster_stop(rlt_cluster *c) {
  for (int i = 0; i < c->n; i++)
    rlt_redis_stop(&c->node[i]);
}

static int info_is(const char *info, const char *line) {
  return strstr(info, line) != NULL;
}

int rlt_cluster_wait_ok(rlt_cluster *c, int64_t timeout_ms) {
  int64_t until = rlt_now_ms() + timeout_ms;
  for (;;) {
    int ok = 1;
    for (int i = 0; ok && i < c->n; i++) {
      char info[4096];
      if (c->node[i].pid <= 0)
        continue;
      ok = rlt_cluster_cli(c, i, info, sizeof info, "CLUSTER", "INFO", NULL) ==
               0 &&
           info_is(info, "cluster_state:ok") &&
           info_is(info, "cluster_slots_ok:16384") &&
           info_is(info, "cluster_slots_pfail:0") &&
           info_is(info, "cluster_slots_fail:0");
    }
    if (ok)
      return 0;
    if (rlt_now_ms() > until)
      return -1;
    rlt_sleep_ms(50);
  }
}

int rlt_cluster_by_port(rlt_cluster *c, unsigned port) {
  for (int i = 0; i < c->n; i++)
    if (c->node[i].port == port)
      return i;
  return -1;
}

int rlt_cluster_is_master(rlt_cluster *c, int i) {
  char out[512];
  return rlt_cluster_cli(c, i, out, sizeof out, "ROLE", NULL) == 0 &&
         strncmp(out, "master", 6) == 0;
}

int rlt_cluster_node_id(rlt_cluster *c, int i, char *id) {
  char out[128];
  if (rlt_cluster_cli(c, i, out, sizeof out, "CLUSTER", "MYID", NULL) != 0 ||
      strlen(out) < 40)
    return -1;
  memcpy(id, out, 40);
  id[40] = '\0';
  return 0;
}

/* One line of CLUSTER NODES. */
typedef struct nodes_line {
  char id[64], addr[64], flags[128], master[64];
  unsigned port;
  const char *slots; /* rest of the line */
} nodes_line;

static int parse_line(char *line, nodes_line *l) {
  int used = 0;
  if (sscanf(line, "%63s %63s %127s %63s %*s %*s %*s %*s%n", l->id, l->addr,
             l->flags, l->master, &used) < 4)
    return -1;
  const char *colon = strrchr(l->addr, ':');
  char *at = strchr(l->addr, '@');
  if (at != NULL)
    *at = '\0';
  colon = strrchr(l->addr, ':');
  l->port = colon != NULL ? (unsigned)atoi(colon + 1) : 0;
  l->slots = line + used;
  return 0;
}

static int owns(const char *slots, unsigned slot) {
  const char *p = slots;
  while (*p != '\0') {
    while (*p == ' ' || *p == '\n')
      p++;
    if (*p == '\0')
      break;
    if (*p == '[') { /* migration marker */
      p = strchr(p, ']');
      if (p == NULL)
        break;
      p++;
      continue;
    }
    char *end = NULL;
    unsigned long lo = strtoul(p, &end, 10), hi = lo;
    if (end == p)
      break;
    if (*end == '-')
      hi = strtoul(end + 1, &end, 10);
    if (slot >= lo && slot <= hi)
      return 1;
    p = end;
  }
  return 0;
}

static int pick_running(rlt_cluster *c, int ask) {
  if (ask >= 0)
    return ask;
  for (int i = 0; i < c->n; i++)
    if (c->node[i].pid > 0)
      return i;
  return -1;
}

int rlt_cluster_slot_owner(rlt_cluster *c, unsigned slot, int ask) {
  static char out[16384];
  int from = pick_running(c, ask);
  if (from < 0 ||
      rlt_cluster_cli(c, from, out, sizeof out, "CLUSTER", "NODES", NULL) != 0)
    return -1;
  for (char *save = NULL, *line = strtok_r(out, "\n", &save); line != NULL;
       line = strtok_r(NULL, "\n", &save)) {
    nodes_line l;
    if (parse_line(line, &l) == 0 && strstr(l.flags, "master") != NULL &&
        strstr(l.flags, "fail") == NULL && owns(l.slots, slot)) {
      int i = rlt_cluster_by_port(c, l.port);
      return i >= 0 && c->node[i].pid > 0 ? i : -1;
    }
  }
  return -1;
}

int rlt_cluster_replica_of(rlt_cluster *c, int m) {
  static char out[16384];
  char id[41];
  int from = pick_running(c, m);
  if (rlt_cluster_node_id(c, m, id) != 0 ||
      rlt_cluster_cli(c, from, out, sizeof out, "CLUSTER", "NODES", NULL) != 0)
    return -1;
  for (char *save = NULL, *line = strtok_r(out, "\n", &save); line != NULL;
       line = strtok_r(NULL, "\n", &save)) {
    nodes_line l;
    if (parse_line(line, &l) == 0 && strstr(l.flags, "slave") != NULL &&
        strstr(l.flags, "fail") == NULL && strcmp(l.master, id) == 0) {
      int i = rlt_cluster_by_port(c, l.port);
      if (i >= 0 && c->node[i].pid > 0)
        return i;
    }
  }
  return -1;
}

int rlt_cluster_migrate_begin(rlt_cluster *c, unsigned slot, int from, int to) {
  char sid[41], fid[41], tid[41], out[256];
  snprintf(sid, sizeof sid, "%u", slot);
  if (rlt_cluster_node_id(c, from, fid) != 0 ||
      rlt_cluster_node_id(c, to, tid) != 0)
    return -1;
  if (rlt_cluster_cli(c, to, out, sizeof out, "CLUSTER", "SETSLOT", sid,
                      "IMPORTING", fid, NULL) != 0 ||
      strncmp(out, "OK", 2) != 0)
    return -1;
  if (rlt_cluster_cli(c, from, out, sizeof out, "CLUSTER", "SETSLOT", sid,
                      "MIGRATING", tid, NULL) != 0 ||
      strncmp(out, "OK", 2) != 0)
    return -1;
  return 0;
}

int rlt_cluster_migrate_keys(rlt_cluster *c, unsigned slot, int from, int to) {
  char sid[16], port[8], keys[8192], out[256];
  snprintf(sid, sizeof sid, "%u", slot);
  snprintf(port, sizeof port, "%u", (unsigned)c->node[to].port);
  for (int round = 0; round < 100; round++) {
    if (rlt_cluster_cli(c, from, keys, sizeof keys, "CLUSTER", "GETKEYSINSLOT",
                        sid, "100", NULL) != 0)
      return -1;
    if (keys[0] == '\0' || keys[0] == '\n')
      return 0;
    for (char *save = NULL, *k = strtok_r(keys, "\n", &save); k != NULL;
         k = strtok_r(NULL, "\n", &save)) {
      if (rlt_cluster_cli(c, from, out, sizeof out, "MIGRATE", "127.0.0.1",
                          port, k, "0", "5000", NULL) != 0 ||
          (strncmp(out, "OK", 2) != 0 && strncmp(out, "NOKEY", 5) != 0))
        return -1;
    }
  }
  return -1;
}

int rlt_cluster_migrate_end(rlt_cluster *c, unsigned slot, int from, int to) {
  char sid[16], tid[41], out[256];
  snprintf(sid, sizeof sid, "%u", slot);
  if (rlt_cluster_node_id(c, to, tid) != 0)
    return -1;
  int order[RLT_CLUSTER_MAX], n = 0;
  order[n++] = to;
  order[n++] = from;
  for (int i = 0; i < c->n; i++)
    if (i != to && i != from && c->node[i].pid > 0 &&
        rlt_cluster_is_master(c, i))
      order[n++] = i;
  for (int k = 0; k < n; k++)
    if (rlt_cluster_cli(c, order[k], out, sizeof out, "CLUSTER", "SETSLOT", sid,
                        "NODE", tid, NULL) != 0 ||
        strncmp(out, "OK", 2) != 0)
      return -1;
  return 0;
}
