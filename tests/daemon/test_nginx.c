/*
 * test_nginx.c - real nginx (the Debian package) protects a location with
 * auth_request to ratelimitd, both on loopback: the first requests pass
 * with RateLimit headers, the next one gets 429 with RateLimit-Policy,
 * RateLimit and Retry-After. The nginx configuration is
 * deploy/nginx/nginx.conf.template, the documented one.
 *
 * usage: test_nginx PATH/TO/ratelimitd PATH/TO/nginx.conf.template
 * Exits 77 (skipped) when /usr/sbin/nginx is missing.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define NGINX "/usr/sbin/nginx"

static const char config[] =
    "server:\n  trusted_proxies: [127.0.0.1]\n"
    "rate_limiter:\n"
    "  windows: [{max_requests: 1000, duration: 1m}]\n"
    "  policies:\n"
    "    - name: api\n"
    "      windows: [{max_requests: 3, duration: 1m}]\n"
    "      key: ip\n";

static uint16_t free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  H_CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
  H_CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
  close(fd);
  return ntohs(a.sin_port);
}

static char *read_all(const char *path) {
  FILE *f = fopen(path, "r");
  H_EXPECT(f != NULL, "cannot read %s", path);
  static char buf[65536];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  return buf;
}

/* Replaces every @NAME@ of the template. */
static void fill(char *out, size_t cap, const char *tpl, const char *dir,
                 uint16_t nginx_port, uint16_t rld_port) {
  size_t at = 0;
  while (*tpl != '\0' && at + 64 < cap) {
    char num[16];
    const char *sub = NULL;
    size_t skip = 0;
    if (strncmp(tpl, "@DIR@", 5) == 0) {
      sub = dir;
      skip = 5;
    } else if (strncmp(tpl, "@NGINX_PORT@", 12) == 0) {
      snprintf(num, sizeof num, "%u", (unsigned)nginx_port);
      sub = num;
      skip = 12;
    } else if (strncmp(tpl, "@RLD_PORT@", 10) == 0) {
      snprintf(num, sizeof num, "%u", (unsigned)rld_port);
      sub = num;
      skip = 10;
    }
    if (sub != NULL) {
      at += (size_t)snprintf(out + at, cap - at, "%s", sub);
      tpl += skip;
    } else {
      out[at++] = *tpl++;
    }
  }
  out[at] = '\0';
}

static h_proc start_nginx(const char *dir, uint16_t port) {
  char conf[1024];
  snprintf(conf, sizeof conf, "%s/nginx.conf", dir);
  char *argv[] = {NGINX, "-p", (char *)dir,   "-c",
                  conf,  "-g", "daemon off;", NULL};
  h_proc p = {fork(), port};
  if (p.pid == 0) {
    execv(NGINX, argv);
    _exit(127);
  }
  h_adopt(p.pid);
  uint64_t deadline = h_now_ms() + 10000;
  for (;;) {
    int fd = h_connect(port);
    if (fd >= 0) {
      close(fd);
      return p;
    }
    H_EXPECT(h_now_ms() < deadline && waitpid(p.pid, NULL, WNOHANG) == 0,
             "nginx did not start (see %s/nginx-error.log)", dir);
    h_sleep_ms(20);
  }
}

static void setup_dir(const char *dir, const char *tpl_path, uint16_t nport,
                      uint16_t rport) {
  static char conf[65536];
  char path[1024];
  chmod(dir, 0755); /* nginx workers may run as another user */
  snprintf(path, sizeof path, "%s/tmp", dir);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/www", dir);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/www/api", dir);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/www/api/hello", dir);
  h_write_file(path, "hello from the api\n");
  chmod(path, 0644);
  fill(conf, sizeof conf, read_all(tpl_path), dir, nport, rport);
  snprintf(path, sizeof path, "%s/nginx.conf", dir);
  h_write_file(path, conf);
}

int main(int argc, char **argv) {
  H_EXPECT(argc >= 3, "usage: %s ratelimitd nginx.conf.template", argv[0]);
  if (access(NGINX, X_OK) != 0) {
    printf("skipped: %s not installed\n", NGINX);
    return 77;
  }
  static h_response r;
  char v[256];
  h_proc rld = h_start_daemon(argv[1], config);
  uint16_t nport = free_port();
  setup_dir(h_tmpdir(), argv[2], nport, rld.port);
  h_proc ngx = start_nginx(h_tmpdir(), nport);
  for (int i = 0; i < 3; i++) {
    H_CHECK(h_http(nport, "GET", "/api/hello", "", NULL, &r) == 0);
    H_EXPECT(r.status == 200, "request %d: %d\n%s", i, r.status, r.raw);
    H_CHECK(strstr(r.body, "hello from the api") != NULL);
    H_CHECK(strcmp(h_header(&r, "RateLimit-Policy", v, sizeof v),
                   "\"api-1m\";q=3;w=60") == 0);
    H_CHECK(h_header(&r, "RateLimit", v, sizeof v) != NULL);
  }
  H_CHECK(strncmp(v, "\"api-1m\";r=0;t=", 15) == 0);
  H_CHECK(h_http(nport, "GET", "/api/hello", "", NULL, &r) == 0);
  H_EXPECT(r.status == 429, "expected 429, got %d\n%s", r.status, r.raw);
  H_CHECK(strstr(r.body, "rate_limited") != NULL);
  H_CHECK(h_header(&r, "Retry-After", v, sizeof v) != NULL && atoi(v) >= 1);
  H_CHECK(h_header(&r, "RateLimit-Policy", v, sizeof v) != NULL);
  H_CHECK(h_header(&r, "RateLimit", v, sizeof v) != NULL);
  H_CHECK(h_http(nport, "GET", "/plain", "", NULL, &r) == 0 && r.status == 200);
  printf("ok: nginx auth_request -> ratelimitd: 200 x3 then 429 with "
         "RateLimit-Policy, RateLimit, Retry-After\n");
  H_CHECK(h_stop(&ngx, SIGQUIT, 10000) >= 0);
  int rc = h_stop(&rld, SIGTERM, 10000);
  H_EXPECT(rc == 0, "ratelimitd exit status %d", rc);
  h_cleanup();
  printf("test_nginx: all passed\n");
  return 0;
}
