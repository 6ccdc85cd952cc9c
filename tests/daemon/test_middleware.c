/*
 * test_middleware.c - runs a middleware example (evhttp or libmicrohttpd)
 * on a free loopback port and checks it through libcurl: three requests
 * pass with the RateLimit headers and the handler's body, the fourth gets
 * 429 with a JSON body, RateLimit-Policy, RateLimit and Retry-After, and a
 * path outside the wrapped handler is not limited.
 *
 * usage: test_middleware PATH/TO/example
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "harness.h"

typedef struct reply {
  long status;
  char body[4096];
  size_t body_len;
  char headers[8192];
  size_t headers_len;
} reply;

static size_t on_body(char *p, size_t size, size_t n, void *arg) {
  reply *r = arg;
  size_t len = size * n;
  size_t room = sizeof r->body - 1 - r->body_len;
  size_t take = len < room ? len : room;
  memcpy(r->body + r->body_len, p, take);
  r->body_len += take;
  r->body[r->body_len] = '\0';
  return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg) {
  reply *r = arg;
  size_t len = size * n;
  size_t room = sizeof r->headers - 1 - r->headers_len;
  size_t take = len < room ? len : room;
  memcpy(r->headers + r->headers_len, p, take);
  r->headers_len += take;
  r->headers[r->headers_len] = '\0';
  return len;
}

static void get(CURL *curl, uint16_t port, const char *path, reply *r) {
  char url[256];
  memset(r, 0, sizeof *r);
  snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)port, path);
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
  CURLcode rc = curl_easy_perform(curl);
  H_EXPECT(rc == CURLE_OK, "GET %s: %s", url, curl_easy_strerror(rc));
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
}

/* The value of header name in r, or NULL. */
static const char *header(const reply *r, const char *name, char *out,
                          size_t cap) {
  size_t n = strlen(name);
  for (const char *p = r->headers; p != NULL && *p != '\0';
       p = strchr(p, '\n') != NULL ? strchr(p, '\n') + 1 : NULL) {
    if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
      const char *v = p + n + 1 + strspn(p + n + 1, " ");
      size_t len = strcspn(v, "\r\n");
      len = len < cap ? len : cap - 1;
      memcpy(out, v, len);
      out[len] = '\0';
      return out;
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  H_EXPECT(argc >= 2, "usage: %s PATH/TO/example", argv[0]);
  char *port_file = h_path("port");
  char *args[] = {argv[1], "--port", "0", "--port-file", port_file, NULL};
  h_proc p = h_start(args, port_file, "example.log");
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURL *curl = curl_easy_init();
  H_CHECK(curl != NULL);
  static reply r;
  char v[256];
  for (int i = 0; i < 3; i++) {
    get(curl, p.port, "/api/hello", &r);
    H_EXPECT(r.status == 200, "request %d: %ld\n%s", i, r.status, r.headers);
    H_CHECK(strstr(r.body, "hello from the api") != NULL);
    H_CHECK(header(&r, "RateLimit-Policy", v, sizeof v) != NULL &&
            strcmp(v, "\"api-1m\";q=3;w=60") == 0);
    H_CHECK(header(&r, "RateLimit", v, sizeof v) != NULL);
  }
  H_CHECK(strncmp(v, "\"api-1m\";r=0;t=", 15) == 0);
  get(curl, p.port, "/api/hello", &r);
  H_EXPECT(r.status == 429, "expected 429, got %ld", r.status);
  H_CHECK(strstr(r.body, "\"error\":\"rate_limited\"") != NULL);
  H_CHECK(header(&r, "Retry-After", v, sizeof v) != NULL && atoi(v) >= 1);
  H_CHECK(header(&r, "RateLimit-Policy", v, sizeof v) != NULL);
  H_CHECK(header(&r, "Content-Type", v, sizeof v) != NULL &&
          strcmp(v, "application/json") == 0);
  curl_easy_cleanup(curl);
  curl_global_cleanup();
  int rc = h_stop(&p, SIGTERM, 10000);
  H_EXPECT(rc == 0, "example exit status %d (see %s)", rc, h_tmpdir());
  printf("ok: %s: 200 x3 with RateLimit headers, then 429 JSON with "
         "Retry-After\n",
         argv[1]);
  free(port_file);
  h_cleanup();
  printf("test_middleware: all passed\n");
  return 0;
}
